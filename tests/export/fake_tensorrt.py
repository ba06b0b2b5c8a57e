"""A recording stand-in for the ``tensorrt`` module: only the names derain_deploy/build/trt_build.py uses
(all present in TensorRT 10.16 and 11.4, see data/), each call appended to ``calls``."""

from __future__ import annotations

import types
from typing import Any


class _Enum:
    def __init__(self, kind: str, *names: str) -> None:
        for name in names:
            setattr(self, name, f"{kind}.{name}")


class FakeTensorRT(types.ModuleType):
    def __init__(self, version: str = "10.16.1.11") -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        rec = self.calls.append
        self.BuilderFlag = _Enum("BuilderFlag", "TF32", "VERSION_COMPATIBLE")
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=3)
        self.MemoryPoolType = _Enum("MemoryPoolType", "WORKSPACE")
        self.HardwareCompatibilityLevel = _Enum("HardwareCompatibilityLevel", "AMPERE_PLUS")

        class Logger:
            WARNING = "Logger.WARNING"

            def __init__(self, level: str) -> None:
                pass

        class Profile:
            def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
                rec(("set_shape", (name, tuple(lo), tuple(opt), tuple(hi))))

        class Cache:
            def serialize(self) -> bytes:
                return b"timing cache"

        class Config:
            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                rec(("set_memory_pool_limit", (pool, size)))

            def set_flag(self, flag: str) -> None:
                rec(("set_flag", (flag,)))

            def clear_flag(self, flag: str) -> None:
                rec(("clear_flag", (flag,)))

            def add_optimization_profile(self, profile: Profile) -> None:
                rec(("add_optimization_profile", ()))

            def create_timing_cache(self, data: bytes) -> Cache:
                rec(("create_timing_cache", (data,)))
                return Cache()

            def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> None:
                pass

            def get_timing_cache(self) -> Cache:
                return Cache()

        class Builder:
            def __init__(self, logger: Logger) -> None:
                pass

            def create_network(self, flags: int) -> object:
                rec(("create_network", (flags,)))
                return object()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: object, config: Config) -> bytes:
                rec(("build_serialized_network", ()))
                return b"fake engine"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network: object, logger: Logger) -> None:
                pass

            def parse(self, data: bytes) -> bool:
                return True

        self.Logger, self.Builder, self.OnnxParser = Logger, Builder, OnnxParser

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]
