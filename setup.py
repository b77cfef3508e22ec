from setuptools import find_packages, setup

setup(
    name="sr",
    version="0.1.0",
    description="SRCNN, FSRCNN, SRResNet and SRGAN in plain PyTorch, evaluated under the standard SR protocol",
    packages=find_packages(include=["sr", "sr.*"]),
    package_data={"sr": ["sources.tsv"]},  # the fetch manifest of sr/fetch.py
    python_requires=">=3.10",
    install_requires=["torch>=2.1", "torchvision>=0.16", "pillow>=10.1", "numpy>=1.24", "h5py>=3.8", "tqdm>=4.60"],
    extras_require={
        "test": ["pytest>=7", "scikit-image>=0.21"],
        "plots": ["matplotlib>=3.7"],
        # sr.export and ONNX inference; tested with onnx 1.23.2 and onnxruntime 1.32.0 (torch 2.14.1).
        # torch's TorchScript exporter is used, so onnxscript is not needed.
        "onnx": ["onnx>=1.16", "onnxruntime>=1.17"],
    },
)
