"""The embedded toy world and its tiny AnimateDiff-family model: runs on a CPU in seconds, fully offline.

``world`` makes seeded procedural videos with captions, ground truth and condition images;
``tracking`` measures them (colour tracker, motion glitches, colour binding); ``model`` builds and loads
the four components; ``train`` trains them.
"""
