#!/usr/bin/env bash
# Build the deployable artifacts into dist/:
#   dist/aws-<arch>/bootstrap.zip   the Lambda package for provided.al2023 (x86_64, and arm64)
#   dist/azure/app.zip              the Azure Functions custom-handler package (handler,
#                                   host.json, one folder per function)
# Usage: infra/package.sh [x86_64|arm64|all]   (default: all)
#        AZURE_FUNCTION_TIMEOUT_SECS=600 sets host.json's functionTimeout (keep it equal to the
#        module's function_timeout_seconds).
#
# Binaries are linked against glibc 2.34, what Amazon Linux 2023 has, whatever this machine's
# glibc is: cargo-zigbuild with Zig from PyPI (`ziglang`) cross-links for that glibc and for
# arm64, with nothing but crates.io, PyPI and rustup's own targets.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.14.1
GLIBC=2.34
arches=${1:-all}
[ "$arches" = all ] && arches="x86_64 arm64"

tools() {
  [ -x .tools/zig/bin/python ] || python3 -m venv .tools/zig
  .tools/zig/bin/pip install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION"
  cargo zigbuild --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION" ||
    cargo install -q --locked cargo-zigbuild --version "$ZIGBUILD_VERSION"
  # cargo-zigbuild runs zig as `python3 -m ziglang` from this venv.
  export PATH="$PWD/.tools/zig/bin:$PATH"
}

triple() {
  case $1 in
    x86_64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    *) echo "unknown architecture $1 (x86_64 or arm64)" >&2; exit 64 ;;
  esac
}

# A small binary for a cold start: the `dist` profile (Cargo.toml: fat LTO, one codegen unit,
# size-optimised outside the byte path, stripped).
build() {
  local target=$1 package=$2
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  cargo zigbuild --quiet --profile dist --locked \
    --target "$target.$GLIBC" -p "$package"
}

# zip_into <zip> <dir>: every file under <dir>, sorted, fixed times, executables kept executable
# (Lambda and the Functions host run `bootstrap` / `handler` straight from the archive).
zip_into() {
  python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
out, root = sys.argv[1], sys.argv[2]
paths = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for rel in paths:
        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
        mode = os.stat(os.path.join(root, rel)).st_mode & 0o777
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(os.path.join(root, rel), "rb") as f:
            z.writestr(info, f.read())
PY
}

size() { du -h "$1" | cut -f1; }

tools
mkdir -p dist
for arch in $arches; do
  target=$(triple "$arch")
  build "$target" backup-aws
  out="dist/aws-$arch"
  rm -rf "$out" && mkdir -p "$out/pkg"
  cp "target/$target/dist/bootstrap" "$out/pkg/bootstrap"
  zip_into "$out/bootstrap.zip" "$out/pkg"
  echo "$out/bootstrap.zip: $(size "$out/bootstrap.zip") (binary $(size "$out/pkg/bootstrap"))"
done

# Azure Functions on Linux runs x86_64.
target=$(triple x86_64)
build "$target" backup-azure
out=dist/azure
rm -rf "$out" && mkdir -p "$out/app"
cp -r functions/azure/app/. "$out/app/"
cp "target/$target/dist/handler" "$out/app/handler"
timeout=${AZURE_FUNCTION_TIMEOUT_SECS:-600}
printf -v hms '%02d:%02d:%02d' $((timeout / 3600)) $((timeout % 3600 / 60)) $((timeout % 60))
sed -i "s/\"functionTimeout\": \"[0-9:]*\"/\"functionTimeout\": \"$hms\"/" "$out/app/host.json"
zip_into "$out/app.zip" "$out/app"
echo "$out/app.zip: $(size "$out/app.zip") (handler $(size "$out/app/handler"))"
