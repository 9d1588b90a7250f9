# Shared by the regenerate scripts (source it; not run on its own): a temporary folder that is removed on
# exit, the reference repository's files at a pinned commit, and a throwaway venv.
#
#   source "$HERE/reference.sh"
#   fetch_reference URL COMMIT CLONE FILE...   # FILEs at COMMIT, extracted under $WORK/reference
#   throwaway_venv VENV PACKAGE...             # VENV created if missing, PACKAGEs installed into it
#
# CLONE: an existing clone (bare or not) of URL; empty: URL is cloned (bare) into $WORK. Nothing of the
# reference is copied into this repository: its files are read and run from $WORK only.
set -euo pipefail

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fetch_reference() {
    local url=$1 commit=$2 clone=$3
    shift 3
    if [ -z "$clone" ]; then
        clone=$WORK/reference.git
        git clone --bare --quiet "$url" "$clone"
    fi
    local git_dir=$clone
    [ -d "$clone/.git" ] && git_dir=$clone/.git
    mkdir -p "$WORK/reference"
    git --git-dir "$git_dir" archive "$commit" "$@" | tar -x -C "$WORK/reference"
}

throwaway_venv() {
    local venv=$1
    shift
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$@"
}
