"""Pure tensor / NumPy operations (tiling, cleaning, boxes, ...), no I/O and no state.

Import the submodules directly (``from fieldvision.ops.tiling import grid_tiles``); this
package does not re-export them so that importing one op does not pull in torch *and*
OpenCV.
"""
