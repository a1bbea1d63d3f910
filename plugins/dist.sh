#!/bin/sh
# Package a release for krew.
#
#   plugins/dist.sh OUTDIR                 build `cargo build --release -p kubectl-canary --locked`
#                                          and package it
#   plugins/dist.sh OUTDIR --binary PATH   package an already built kubectl-canary instead
#
# Writes, for the machine it runs on (the binary must run here: its version is asked of it):
#   OUTDIR/kubectl-canary_<version>_<os>_<arch>.tar.gz          kubectl-canary, LICENSE, README.md
#   OUTDIR/kubectl-canary_<version>_<os>_<arch>.tar.gz.sha256   `sha256sum` format
#   OUTDIR/canary.yaml   the krew manifest, rendered from plugins/canary.yaml with the real uri
#                        and sha256 of every archive of this version in OUTDIR. Platforms with no
#                        archive there are left out, so archives built on other machines (copied
#                        into OUTDIR before the last run) are included, and nothing is made up.
#
# os/arch are krew's (and Go's) words: linux/amd64, darwin/arm64. Archives are reproducible: the
# same binary gives the same bytes (sorted entries, mtime 0, owner 0:0, fixed modes, gzip -n).
# Needs GNU tar (for --sort; `gtar` on macOS, set TAR=gtar) and sha256sum or shasum. Errors are
# one line starting `error: ` and exit 1 (2: usage).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
name=kubectl-canary

usage() {
    echo "usage: plugins/dist.sh OUTDIR [--binary PATH]" >&2
    exit 2
}
fail() {
    echo "error: $*" >&2
    exit 1
}
tar=${TAR:-tar}
# `sha256sum` output (`<hex>  <file>`), with macOS's shasum where coreutils is missing.
sha256() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

[ $# -ge 1 ] || usage
outdir=$1
shift
binary=
while [ $# -gt 0 ]; do
    case $1 in
        --binary)
            [ $# -ge 2 ] || usage
            binary=$2
            shift 2
            ;;
        *) usage ;;
    esac
done

if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release -p "$name" --locked) >&2 ||
        fail "cargo build --release -p $name --locked failed"
    binary=${CARGO_TARGET_DIR:-$root/target}/release/$name
fi
[ -f "$binary" ] && [ -x "$binary" ] || fail "$binary is not an executable file"

# The version of what is packaged, not of the checkout: `kubectl-canary 0.1.0 (policy ABI v1, x86_64)`.
version=$("$binary" version | sed -n 's/^kubectl-canary \([^ ]*\) .*$/\1/p') ||
    fail "$binary version failed"
echo "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' ||
    fail "$binary version does not print a version X.Y.Z (got '$version')"

case $(uname -s) in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) fail "unsupported OS $(uname -s) (krew platforms here: linux, darwin)" ;;
esac
case $(uname -m) in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "unsupported architecture $(uname -m) (krew platforms here: amd64, arm64)" ;;
esac

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
archive=${name}_${version}_${os}_${arch}.tar.gz

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
cp "$binary" "$stage/$name"
cp "$root/LICENSE" "$root/README.md" "$stage/"
chmod 0755 "$stage/$name"
chmod 0644 "$stage/LICENSE" "$stage/README.md"
# GNU format: no pax headers (which would carry atime and the pid). `gzip -n`: no name or time.
# --sort=name orders what tar finds in directories; the files named here are in byte order.
(cd "$stage" && "$tar" --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf - LICENSE README.md "$name") | gzip -n >"$stage/$archive"
mv "$stage/$archive" "$outdir/$archive"
(cd "$outdir" && sha256 "$archive" >"$archive.sha256")

# "os arch sha256" for every archive of this version in OUTDIR.
found=$stage/archives
: >"$found"
for path in "$outdir/${name}_${version}_"*_*.tar.gz; do
    [ -f "$path" ] || continue
    platform=${path##*/${name}_${version}_}
    platform=${platform%.tar.gz}
    sha256=$(sha256 "$path" | cut -d' ' -f1)
    echo "${platform%%_*} ${platform#*_} $sha256" >>"$found"
done

# Each platform block of the template (`  - selector:` up to the next one) is kept only when its
# archive is present, with {{SHA256}} filled in; {{VERSION}} is filled in everywhere.
awk -v version="$version" -v missing="$stage/missing" '
    function flush() {
        if (block != "" && (key in sha)) {
            gsub(/\{\{SHA256\}\}/, sha[key], block)
            printf "%s", block
            used[key] = 1
        }
        block = ""
        key = ""
    }
    NR == FNR { sha[$1 "/" $2] = $3; next }
    FNR == 1 { print "# Rendered by plugins/dist.sh from plugins/canary.yaml: do not edit." }
    !body && /^#/ { next }
    { body = 1 }
    { gsub(/\{\{VERSION\}\}/, version) }
    /^  platforms:/ { inplatforms = 1; print; next }
    inplatforms && /^  - / { flush() }
    inplatforms && /^(  - |    )/ {
        if (match($0, /os: *[a-z0-9]+/)) { os = substr($0, RSTART, RLENGTH); sub(/os: */, "", os) }
        if (match($0, /arch: *[a-z0-9]+/)) { arch = substr($0, RSTART, RLENGTH); sub(/arch: */, "", arch); key = os "/" arch }
        block = block $0 "\n"
        next
    }
    inplatforms { flush(); inplatforms = 0 }
    { print }
    END {
        flush()
        for (k in sha) if (!(k in used)) print k > missing
    }
' "$found" "$here/canary.yaml" >"$stage/canary.yaml"
if [ -s "$stage/missing" ]; then
    fail "plugins/canary.yaml has no platform for the archive(s) of $(tr '\n' ' ' <"$stage/missing" | sed 's/ $//') in $outdir"
fi
mv "$stage/canary.yaml" "$outdir/canary.yaml"
echo "$outdir/$archive"
echo "$outdir/canary.yaml"
