"""The embedded toy world and its tiny AnimateDiff-family model: runs on a CPU in seconds, fully offline.

``world`` makes seeded procedural videos with captions, ground truth and condition images;
``tracking`` measures them (colour tracker, motion glitches, colour binding); ``model`` builds and loads
the four components; ``evaluate`` samples held-out captions and scores them. The code that trained the
committed weights lives outside the package, in the repository's ``training/`` folder.
"""
