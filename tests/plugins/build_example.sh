#!/bin/sh
# Installs the project into a scratch prefix and builds examples/plugin out of
# tree against the installed <jetsched/plugin.h>.
# Usage: build_example.sh BUILD_DIR SOURCE_DIR OUT_DIR
set -eu
build=$1 src=$2 out=$3
rm -rf "$out"
mkdir -p "$out"
cmake --install "$build" --prefix "$out/prefix" > "$out/install.log"
test -f "$out/prefix/include/jetsched/plugin.h" || { echo "jetsched/plugin.h was not installed" >&2; exit 1; }
for p in noop echo exec http; do
  found=$(find "$out/prefix" -path "*/jetsched/plugins/$p.so" | head -n1)
  test -n "$found" || { echo "built-in plugin $p.so was not installed" >&2; exit 1; }
done
# Only the installed header: no source tree include path, the example's own Makefile.
make -C "$src/examples/plugin" JETSCHED_PREFIX="$out/prefix" BUILD_DIR="$out" CFLAGS="-O1 -g"
test -f "$out/reverse.so"
# The built-ins' install directory, for the test to load them from there.
dirname "$(find "$out/prefix" -path '*/jetsched/plugins/echo.so' | head -n1)" > "$out/installed_plugin_dir"
echo "example plugin built: $out/reverse.so"
