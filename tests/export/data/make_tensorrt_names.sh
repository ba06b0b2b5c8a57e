#!/bin/sh
# Regenerates tensorrt_<version>_names.txt: every identifier-like string in the TensorRT Python
# bindings (pybind11 registers each class, method, property and enum member name as a C string;
# the linker may merge a name into the tail of a longer one, e.g. "Builder" into "IExprBuilder",
# so tests accept a suffix match), plus the module-level names set in tensorrt_bindings/__init__.py.
# Needs only pip and binutils; the wheels are ~1.3 MB and are not committed.
set -eu
tmp=$(mktemp -d)
for spec in "tensorrt-cu12-bindings==10.16.1.11" "tensorrt-cu13-bindings==11.4.0.106"; do
    version=${spec#*==}
    pip download --no-deps --quiet -d "$tmp/$version" "$spec"
    (cd "$tmp/$version" && python -m zipfile -e ./*.whl .)
    {
        strings -n 2 "$tmp/$version/tensorrt_bindings/tensorrt.so" | grep -xE '[A-Za-z][A-Za-z0-9_]*'
        grep -oE '^[A-Za-z_][A-Za-z0-9_]* =' "$tmp/$version/tensorrt_bindings/__init__.py" | cut -d' ' -f1
    } | sort -u > "tensorrt_${version}_names.txt"
done
rm -rf "$tmp"
