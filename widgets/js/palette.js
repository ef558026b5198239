// The colours of every view: the twin of anyi2v_lab/palette.py, which draws the same pictures in Python
// (tests/widgets/test_widgets_js.py pins the two together). Colours are [r, g, b]; `css` makes a style.

/** Object o of a trajectory: its box, path and mask tint. */
export const OBJECT_COLOURS = [[255, 215, 0], [0, 200, 255], [255, 80, 200], [120, 255, 80], [255, 140, 0]];
/** Cluster label j: matplotlib's tab10. */
export const CLUSTER_COLOURS = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];
/** The cross on a clicked point, in every panel. */
export const QUERY_COLOUR = [0, 255, 136];
/** The microscope's timeline: one colour a phase of the generation. */
export const PHASE_COLOURS = { inversion: [126, 87, 194], optimisation: [239, 108, 0], sampling: [30, 136, 229] };

/** [r, g, b] -> "rgb(r, g, b)" for a canvas or CSS style. */
export function css(rgb) {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

/** The style of object `o` (colours repeat after the fifth object). */
export function objectColour(o) {
  return css(OBJECT_COLOURS[o % OBJECT_COLOURS.length]);
}
