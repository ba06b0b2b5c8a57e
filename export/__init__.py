"""derain-export: checked ONNX (FP32, FP16, INT8) and TensorRT engines from DerainNet weights.

The library entry point is :func:`export.api.export_model`; ``export.cli:main`` is the command."""
