"""Forward operators of linear inverse problems, each with ``A`` and ``A_adjoint`` (deepinv-style):
downsampling (super-resolution), masking (inpainting), undersampled Fourier (CS-MRI)."""
