from setuptools import find_packages, setup

setup(
    name="sr",
    version="0.1.0",
    description="SRCNN, FSRCNN, SRResNet and SRGAN in plain PyTorch, evaluated under the standard SR protocol",
    packages=find_packages(include=["sr", "sr.*"]),
    package_data={"sr": ["sources.tsv"]},  # the fetch manifest of sr/fetch.py
    python_requires=">=3.10",
    # The torch floor is the newest API the code needs: torch.amp.GradScaler(device_type) (sr.training.optim),
    # new in torch 2.3; torchvision 0.18 is its pair. Newer APIs are used only where guarded (torch.cpu.get_capabilities,
    # 2.8; torch.cuda.is_bf16_supported(including_emulation=), 2.4: sr.precision) or in the [onnx] extra
    # (torch.onnx.export(dynamo=False) in sr.export, 2.5).
    # safetensors: the shipped weights (sr.checkpoint.save_weights), read without pickle.
    install_requires=["torch>=2.3", "torchvision>=0.18", "pillow>=10.1", "numpy>=1.24", "h5py>=3.8", "tqdm>=4.60",
                      "safetensors>=0.4"],
    extras_require={
        "test": ["pytest>=7.3", "scikit-image>=0.21"],
        "plots": ["matplotlib>=3.7"],
        # sr.export and ONNX inference; tested with onnx 1.23.2 and onnxruntime 1.32.0 (torch 2.14.1).
        # torch's TorchScript exporter is used, so onnxscript is not needed.
        "onnx": ["onnx>=1.16", "onnxruntime>=1.17"],
        # Community models (Real-ESRGAN, SwinIR, HAT, ...) in eval.py --weights: sr.zoo; tested with spandrel 0.4.2.
        "zoo": ["spandrel>=0.4"],
    },
)
