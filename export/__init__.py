"""derain-export: the command over the runtime's artifact builder (:mod:`derain_deploy.build`:
checked ONNX, FP16, INT8 and TensorRT engines from DerainNet weights), and Triton repositories.

``export`` depends on ``derain_deploy``, never the other way; the library entry point is
:func:`derain_deploy.build.api.export_model`; ``export.cli:main`` is the command."""
