"""Super-resolution in plain PyTorch: SRCNN, FSRCNN, SRResNet and SRGAN under the standard protocol."""

__version__ = "0.1.0"
