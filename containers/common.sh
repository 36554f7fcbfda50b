# Sourced by the other containers/*.sh scripts: the settings they share, in one place,
# so that the wheelhouse key, the image name and the project version cannot drift apart.
# Every setting can be overridden from the environment (the Makefile passes TORCH_VERSION).

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTAINERS_DIR="$REPO_ROOT/containers"

PYTHON=${PYTHON:-python3}
DOCKER=${DOCKER:-docker}
# torch as the local base gets it (the CPU wheel here); an official CUDA base keeps its own torch.
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# The Python of the base image: the wheelhouse is downloaded for it (cp311 wheels). Both Debian
# bookworm (the offline base) and the default official PyTorch image ship Python 3.11.
TAO_PYTHON_VERSION=${TAO_PYTHON_VERSION:-3.11}
# Kept outside the repository so that a fresh clone reuses it.
TAO_BUILD_CACHE=${TAO_BUILD_CACHE:-$HOME/.cache/tao-build}

log() { echo "[$(basename "$0")] $*" >&2; }
die() { log "error: $*"; exit 1; }

# The project's version, read from the package (the one place it is written).
tao_version() {
    local v
    v=$(sed -nE "s/^__version__[[:space:]]*=[[:space:]]*['\"]([^'\"]+)['\"].*/\1/p" \
        "$REPO_ROOT/tao_launcher/__init__.py")
    [ -n "$v" ] || die "no __version__ in tao_launcher/__init__.py"
    echo "$v"
}

# Seconds as a decimal, for the timings the scripts print.
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }
