#!/bin/sh
# Build the built-in policies to wasm32 with Debian's offline toolchain and copy them to dist/.
#
#   policies/build.sh           build and update policies/dist/<name>.wasm
#   policies/build.sh --check   rebuild in a temp dir; fail if a byte differs from dist/
#   policies/build.sh --test    run the policies' and policy-sdk's native tests with the same
#                               toolchain (rustc 1.63)
#
# Why a staging copy: cargo 1.65 (Debian) walks up from policy-sdk/ to the root Cargo.toml, whose
# `resolver = "3"` it cannot read. So policy-sdk/ and policies/ are copied to a fresh directory
# with no parent manifest, and built there with paths remapped to /stage: the output does not depend on where the repository is checked
# out (verified by building from two directories and comparing sha256).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-build}
cargo=${CANARY_WASM_CARGO:-/usr/bin/cargo}
rustc=${CANARY_WASM_RUSTC:-/usr/bin/rustc}
policies="progressive business-hours"

# A FIXED staging path: cargo 1.65 hashes RUSTFLAGS (which name it) into every crate's metadata,
# and so into symbol names and the module's layout. One build at a time holds it (flock).
stage=/tmp/kubectl-canary-policies-build
exec 9>"$stage.lock"
flock 9
rm -rf "$stage"
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/src"
cp -R "$root/policy-sdk" "$stage/src/policy-sdk"
(cd "$here" && tar cf - --exclude=./target --exclude=./dist .) | (mkdir -p "$stage/src/policies" && cd "$stage/src/policies" && tar xf -)
rm -rf "$stage/src/policy-sdk/target"

cd "$stage/src/policies"
export CARGO_TARGET_DIR="$stage/target"
export RUSTC="$rustc"
# Tests: doctests would otherwise use the rustup rustdoc against 1.63 metadata.
if [ -x /usr/bin/rustdoc ]; then export RUSTDOC=/usr/bin/rustdoc; fi
export CARGO_HOME="$stage/cargo-home"
export RUSTFLAGS="--remap-path-prefix=$stage=/stage"
export SOURCE_DATE_EPOCH=0

case "$mode" in
--test)
    unset RUSTFLAGS
    "$cargo" test --offline --quiet
    # policy-sdk itself (with the shared Istio rules) on the same rustc 1.63.
    "$cargo" test --offline --quiet --all-features --manifest-path ../policy-sdk/Cargo.toml
    exit 0
    ;;
build | --check) ;;
*)
    echo "usage: $0 [--check|--test]" >&2
    exit 2
    ;;
esac

"$cargo" build --release --target wasm32-unknown-unknown --offline --quiet
# Keep the lock file Debian's cargo resolved (format v3, readable by every cargo since 1.53).
if [ "$mode" = build ]; then
    cp Cargo.lock "$here/Cargo.lock"
fi

status=0
# The digests the plugin embeds with the modules (it would otherwise hash them at every load);
# a unit test in plugin/src/policy/source.rs checks them against the embedded bytes.
sums="$stage/SHA256SUMS"
for name in $policies; do
    file=$(echo "$name" | tr - _).wasm
    (cd "$stage/target/wasm32-unknown-unknown/release" && sha256sum "$file" | sed "s/ $file\$/ $name.wasm/")
done >"$sums"
(cd "$here/wat" && sha256sum -- *.wat) >>"$sums"
if [ "$mode" = --check ]; then
    if ! cmp -s "$sums" "$here/dist/SHA256SUMS"; then
        echo "policies/dist/SHA256SUMS differs from a fresh build: run policies/build.sh and commit" >&2
        status=1
    fi
else
    cp "$sums" "$here/dist/SHA256SUMS"
fi
for name in $policies; do
    file=$(echo "$name" | tr - _).wasm
    built="$stage/target/wasm32-unknown-unknown/release/$file"
    if [ "$mode" = --check ]; then
        if ! cmp -s "$built" "$here/dist/$name.wasm"; then
            echo "policies/dist/$name.wasm differs from a fresh build: run policies/build.sh and commit" >&2
            status=1
        fi
    else
        mkdir -p "$here/dist"
        cp "$built" "$here/dist/$name.wasm"
        echo "policies/dist/$name.wasm $(sha256sum "$built" | cut -c1-64)"
    fi
done
exit $status
