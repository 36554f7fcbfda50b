#!/usr/bin/env bash
# Build the tao-launcher image, tao-launcher:<version>-pyt (the version read from
# tao_launcher/__init__.py), from containers/Dockerfile.
#
# The build context is a folder of its own, never the repository: a fresh one per build (two
# builds may run at once) in $TAO_BUILD_CACHE, holding only the wheelhouse (hard links into the
# cache that wheelhouse.sh fills), the project's wheel and the Dockerfile; .venv, .git and
# results are never sent to the daemon. The project's wheel is built here, offline, from a copy of the
# sources with fixed timestamps (SOURCE_DATE_EPOCH): unchanged sources give a byte-identical
# wheel, and the build reuses every cached layer; changed sources rebuild only the last layer.
#
# Environment: BASE_IMAGE (empty: the Dockerfile's default, an official CUDA PyTorch image),
# TAO_IMAGE (the tag), DOCKER (the client), DOCKER_BUILDKIT (0 or 1; unset: BuildKit when the
# client can, the legacy builder otherwise), TAO_DOCKER_BUILD_ARGS (more `docker build` args).
set -euo pipefail
source "$(dirname "$0")/common.sh"

version=$(tao_version)
image=${TAO_IMAGE:-tao-launcher:$version-pyt}
base_image=${BASE_IMAGE:-}

# BuildKit when this client has it: with buildx, or a client before 23.0 (built in). A newer
# client without buildx refuses DOCKER_BUILDKIT=1, so it gets the legacy builder.
if [ -z "${DOCKER_BUILDKIT:-}" ]; then
    client=$("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null || echo 0)
    if "$DOCKER" buildx version >/dev/null 2>&1 || [ "${client%%.*}" -lt 23 ] 2>/dev/null; then
        DOCKER_BUILDKIT=1
    else
        DOCKER_BUILDKIT=0
    fi
fi
export DOCKER_BUILDKIT

"$DOCKER" info >/dev/null 2>&1 || die "no Docker Engine answers ($DOCKER info failed)"
wheelhouse=$("$CONTAINERS_DIR/wheelhouse.sh" | tail -n 1)

start=$(now)
ctx=$(mktemp -d "$TAO_BUILD_CACHE/context.XXXXXX")
stage=$(mktemp -d "${TMPDIR:-/tmp}/tao-wheel.XXXXXX")
trap 'rm -rf "$ctx" "$stage"' EXIT
mkdir "$ctx/dist"
cp "$CONTAINERS_DIR/Dockerfile" "$ctx/Dockerfile"
# Hard links (the same file system): no copy of the 360 MB.
cp -al "$wheelhouse" "$ctx/wheelhouse" 2>/dev/null || cp -a "$wheelhouse" "$ctx/wheelhouse"

# The project's wheel, from a copy of what it is made of (no build/ or egg-info in the repository),
# its setuptools taken from the wheelhouse: no network.
tar -C "$REPO_ROOT" --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md tao_launcher \
    | tar -C "$stage" -xf -
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel --quiet --no-deps --no-index \
    --find-links "$wheelhouse" -w "$ctx/dist" "$stage" >&2
ls "$ctx"/dist/*.whl >/dev/null || die "no wheel was built"
log "$(basename "$ctx"/dist/*.whl) sha256 $(sha256sum "$ctx"/dist/*.whl | cut -c1-16)"

build_args=(--build-arg "TAO_VERSION=$version")
[ -n "$base_image" ] && build_args+=(--build-arg "BASE_IMAGE=$base_image")
[ "$DOCKER_BUILDKIT" = 1 ] && build_args+=(--progress=plain)
log "building $image (base ${base_image:-default of the Dockerfile}, DOCKER_BUILDKIT=$DOCKER_BUILDKIT, $DOCKER)"
if [ "$DOCKER_BUILDKIT" = 0 ]; then
    # The legacy builder keeps the dependency stage as an untagged image: it is the layer cache
    # of that stage, which `docker image prune` would delete (the next build then takes minutes
    # instead of seconds). Tagged, it stays: $image-deps (a cache hit, when nothing changed).
    # shellcheck disable=SC2086  # TAO_DOCKER_BUILD_ARGS: words on purpose
    "$DOCKER" build ${base_image:+--build-arg "BASE_IMAGE=$base_image"} ${TAO_DOCKER_BUILD_ARGS:-} \
        --target deps -t "$image-deps" "$ctx"
fi
# shellcheck disable=SC2086
"$DOCKER" build "${build_args[@]}" ${TAO_DOCKER_BUILD_ARGS:-} -t "$image" "$ctx"

size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
log "built $image: $((size / 1000000)) MB, in $(elapsed "$start") s"
