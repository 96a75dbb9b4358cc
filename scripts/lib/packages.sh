# scripts/lib/packages.sh — installs the system packages of scripts/system-packages (the one list).
#   bash scripts/lib/packages.sh list build|test|bench      the packages of that kind and the ones before it
#   bash scripts/lib/packages.sh missing build|test|bench   those not installed
#   bash scripts/lib/packages.sh install build|test|bench   installs the missing ones with apt (sudo when not root)
# Sourced (scripts/demo, scripts/lib/services.sh, Benchmarks/run), it defines the same as functions:
# system_packages KIND, missing_system_packages KIND, install_system_packages KIND.
PACKAGES_FILE="${DELTAKIT_PACKAGES_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/system-packages}"

system_packages() { # kind
    local kinds
    case "$1" in
        build) kinds="build" ;;
        test) kinds="build test" ;;
        bench) kinds="build test bench" ;;
        *) printf 'packages: unknown kind %s (build, test or bench)\n' "$1" >&2; return 2 ;;
    esac
    [[ -r "$PACKAGES_FILE" ]] || { printf 'packages: %s not found\n' "$PACKAGES_FILE" >&2; return 1; }
    # Comments and blank lines aside, "<package> <kind>".
    sed -e 's/#.*//' "$PACKAGES_FILE" | awk -v kinds=" $kinds " 'NF >= 2 && index(kinds, " " $2 " ") { print $1 }'
}

missing_system_packages() { # kind
    local p list
    list="$(system_packages "$1")" || return
    for p in $list; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_system_packages() { # kind
    local missing sudo=()
    if ! command -v dpkg-query >/dev/null; then
        # Not Debian/Ubuntu: nothing to check here; the build names what it cannot find.
        printf '==> not a Debian system: make sure these (Debian names) are installed: %s (macOS: brew install librdkafka libpq sqlite pkg-config; export PKG_CONFIG_PATH="$(brew --prefix libpq)/lib/pkgconfig")\n' \
            "$(system_packages "$1" | tr '\n' ' ')" >&2
        return 0
    fi
    missing="$(missing_system_packages "$1")" || return
    [[ -z "$missing" ]] && return 0
    if ! command -v apt-get >/dev/null; then
        printf 'missing system packages: %s — install them\n' "$(echo $missing)" >&2
        return 1
    fi
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || {
            printf 'missing system packages; run as root: apt-get install %s\n' "$(echo $missing)" >&2
            return 1
        }
        sudo=(sudo)
    fi
    printf '==> installing %s with apt\n' "$(echo $missing)" >&2
    "${sudo[@]}" apt-get update -qq
    # shellcheck disable=SC2086 # one package a word
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq $missing >/dev/null
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        list) system_packages "${2:-}" ;;
        missing) missing_system_packages "${2:-}" ;;
        install) install_system_packages "${2:-}" ;;
        *) echo "usage: bash scripts/lib/packages.sh list|missing|install build|test|bench" >&2; exit 2 ;;
    esac
fi
