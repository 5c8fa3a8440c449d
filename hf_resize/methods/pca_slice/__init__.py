"""PCA slicing of the hidden width (SliceGPT-style baseline)."""

from hf_resize.methods.pca_slice.method import PCASliceConfig, pca_slice_plan, principal_basis

__all__ = ["PCASliceConfig", "pca_slice_plan", "principal_basis"]
