#!/bin/sh
# shellcheck shell=dash
#
# Installs the x86_64-hyperlight-none target into a Rust toolchain and `hyperlight-run` into
# cargo's bin directory (`--target x86_64-hyperlight-hermit` for std guests,
# `--target aarch64-hyperlight-none` for AArch64 guests):
#
#     curl --proto '=https' --tlsv1.2 -sSf <dist server>/install.sh | sh -s -- -y
#
# This script only bootstraps: it downloads the release's `hyperlight-run`, checks it against
# the size and sha256 written into this file when the release was made, and hands over to
# `hyperlight-run init` with the same options. That binary is the installer: it checks the
# release's signed manifest, picks the sysroot built by your exact rustc (or builds one), and
# installs it without ever leaving the toolchain half-changed. `--help` lists the options.
#
# All logic lives in functions and the last line calls main, so a download that stops
# half-way through this file runs nothing.

set -u

# The project's GitHub Releases; `latest/download/<file>` serves the newest release's files.
DEFAULT_DIST_SERVER="https://github.com/example-org/hyperlight-none/releases/latest/download"

# Written by `cargo xtask dist`: the installer binary of this release. It trusts only manifests
# signed with the release's key (ed25519, public key @RELEASE_KEY@), which is compiled into it,
# so the sha256 below pins that key too.
RUNNER_FILE="@RUNNER_FILE@"
RUNNER_SIZE="@RUNNER_SIZE@"
RUNNER_SHA256="@RUNNER_SHA256@"

# Exit codes of the bootstrap itself (the installer uses the same table; see --help).
EXIT_USAGE=2
EXIT_PLATFORM=3
EXIT_DOWNLOAD=6
EXIT_VERIFY=7
EXIT_INSTALL=8

say() {
    if [ "$QUIET" = no ]; then
        printf 'info: %s\n' "$1" >&2
    fi
}

# die CODE MESSAGE [DETAIL...]: print and exit with CODE (the EXIT trap cleans up).
die() {
    _code=$1
    shift
    printf 'error: %s\n' "$1" >&2
    shift
    for _line in "$@"; do
        printf '       %s\n' "$_line" >&2
    done
    exit "$_code"
}

need_cmd() {
    command -v "$1" >/dev/null 2>&1 ||
        die "$EXIT_PLATFORM" "this installer needs '$1'; install it with your package manager and run again"
}

cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
}

check_platform() {
    _os=$(uname -s)
    _arch=$(uname -m)
    if [ "$_os" != Linux ]; then
        die "$EXIT_PLATFORM" "Hyperlight guests run on KVM, so only x86-64 Linux is supported (this is $_os $_arch)"
    fi
    case $_arch in
        x86_64 | amd64) ;;
        *) die "$EXIT_PLATFORM" "only x86-64 Linux is supported (this is $_os $_arch)" ;;
    esac
}

check_tools() {
    for _cmd in uname mktemp sed wc tr chmod rm; do
        need_cmd "$_cmd"
    done
    if command -v sha256sum >/dev/null 2>&1; then
        SHA256=sha256sum
    elif command -v shasum >/dev/null 2>&1; then
        SHA256=shasum
    elif command -v openssl >/dev/null 2>&1; then
        SHA256=openssl
    else
        die "$EXIT_PLATFORM" "this installer needs sha256sum, shasum or openssl to verify downloads"
    fi
    case ${HYPERLIGHT_DOWNLOADER:-} in
        curl | wget)
            need_cmd "$HYPERLIGHT_DOWNLOADER"
            DOWNLOADER=$HYPERLIGHT_DOWNLOADER
            ;;
        "")
            if command -v curl >/dev/null 2>&1; then
                DOWNLOADER=curl
            elif command -v wget >/dev/null 2>&1; then
                DOWNLOADER=wget
            else
                die "$EXIT_PLATFORM" "this installer needs curl or wget; install one and run again"
            fi
            ;;
        *) die "$EXIT_USAGE" "HYPERLIGHT_DOWNLOADER must be curl or wget, not '$HYPERLIGHT_DOWNLOADER'" ;;
    esac
}

sha256_of() {
    case $SHA256 in
        sha256sum) _out=$(sha256sum "$1") ;;
        shasum) _out=$(shasum -a 256 "$1") ;;
        *) _out=$(openssl dgst -sha256 -r "$1") ;;
    esac
    printf '%s\n' "$_out" | sed 's/^\\//; s/[ *].*//'
}

# download URL FILE: fetch URL into FILE, exiting with EXIT_DOWNLOAD on any failure.
download() {
    if [ "$DOWNLOADER" = curl ]; then
        if [ "$QUIET" = no ]; then _show=--progress-bar; else _show=--silent; fi
        case $1 in
            https://*) set -- "$1" "$2" --proto '=https' --tlsv1.2 ;;
        esac
        _url=$1
        _file=$2
        shift 2
        _status=$(curl "$@" "$_show" --show-error --location --retry 2 --output "$_file" \
            --write-out '%{http_code}' "$_url" 2>"$WORK/download.err")
        _rc=$?
        if [ "$_rc" -ne 0 ]; then
            die "$EXIT_DOWNLOAD" "download of $_url failed: $(sed -n '$p' "$WORK/download.err")" \
                "check your connection and the dist server ($DIST_SERVER), then run again"
        fi
    else
        _url=$1
        wget --server-response --tries=3 --output-document="$2" "$_url" 2>"$WORK/download.err"
        _rc=$?
        _status=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$WORK/download.err" | sed -n '$p')
        if [ "$_rc" -ne 0 ] && [ "$_rc" -ne 8 ]; then
            die "$EXIT_DOWNLOAD" "download of $_url failed (wget exit code $_rc): $(sed -n '$p' "$WORK/download.err")" \
                "check your connection and the dist server ($DIST_SERVER), then run again"
        fi
    fi
    case $_status in
        2??) ;;
        404) die "$EXIT_DOWNLOAD" "download of $_url failed: HTTP 404 (not found)" \
            "check --dist-server / HYPERLIGHT_DIST_SERVER ($DIST_SERVER)" ;;
        5??) die "$EXIT_DOWNLOAD" "download of $_url failed: HTTP $_status (server error)" \
            "the dist server has a problem; try again later" ;;
        *) die "$EXIT_DOWNLOAD" "download of $_url failed: HTTP ${_status:-(no answer)}" \
            "check --dist-server / HYPERLIGHT_DIST_SERVER ($DIST_SERVER)" ;;
    esac
}

# Sets INSTALLER to the release's installer binary, checked against this file's record: the
# installed hyperlight-run when it is that binary already (then nothing is downloaded), else a
# download into $WORK.
fetch_installer() {
    case $RUNNER_FILE in
        @*) die 1 "this install.sh is the template in the repository, not a release's" \
            "use the install.sh a release serves, or build one with: cargo xtask dist" ;;
    esac
    # Where `cargo install` puts binaries, and so the installer puts hyperlight-run.
    _bin=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-${HOME:-}/.cargo}}/bin/hyperlight-run
    if [ -f "$_bin" ] && [ -x "$_bin" ] && [ "$(sha256_of "$_bin")" = "$RUNNER_SHA256" ]; then
        INSTALLER=$_bin
        return 0
    fi
    INSTALLER="$WORK/$RUNNER_FILE"
    say "downloading $RUNNER_FILE"
    download "$DIST_SERVER/$RUNNER_FILE" "$INSTALLER"
    _size=$(wc -c <"$INSTALLER" | tr -d ' ')
    if [ "$_size" != "$RUNNER_SIZE" ]; then
        die "$EXIT_DOWNLOAD" "$RUNNER_FILE is truncated or too long: got $_size bytes, expected $RUNNER_SIZE" \
            "the download was cut short or the dist server serves another file; run again"
    fi
    _sha=$(sha256_of "$INSTALLER")
    if [ "$_sha" != "$RUNNER_SHA256" ]; then
        die "$EXIT_VERIFY" "$RUNNER_FILE is corrupt: its sha256 does not match this install.sh" \
            "expected sha256 $RUNNER_SHA256" \
            "actual sha256   $_sha" \
            "nothing was installed or run; run again, and report it if it persists"
    fi
    chmod 755 "$INSTALLER" || die "$EXIT_INSTALL" "cannot make $INSTALLER executable"
}

main() {
    QUIET=no
    WORK=""
    DIST_SERVER=${HYPERLIGHT_DIST_SERVER:-$DEFAULT_DIST_SERVER}
    # The options this script needs itself; all of them go on to the installer.
    _next_is_server=no
    for _arg in "$@"; do
        if [ "$_next_is_server" = yes ]; then
            DIST_SERVER=$_arg
            _next_is_server=no
            continue
        fi
        case $_arg in
            -q) QUIET=yes ;;
            --dist-server) _next_is_server=yes ;;
            --dist-server=*) DIST_SERVER=${_arg#*=} ;;
        esac
    done
    if [ "$_next_is_server" = yes ] || [ -z "$DIST_SERVER" ]; then
        die "$EXIT_USAGE" "--dist-server needs a value (see --help)"
    fi
    DIST_SERVER=${DIST_SERVER%/}
    case $DIST_SERVER in
        https://* | http://*) ;;
        *) die "$EXIT_USAGE" "--dist-server must be an https:// (or http://) URL, not '$DIST_SERVER'" ;;
    esac

    check_platform
    check_tools
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/hyperlight-install.XXXXXX") ||
        die "$EXIT_INSTALL" "cannot create a temporary directory (set TMPDIR to a writable one)"
    fetch_installer
    HYPERLIGHT_DIST_SERVER=$DIST_SERVER "$INSTALLER" init "$@"
    _rc=$?
    case $_rc in
        126 | 127) die "$EXIT_INSTALL" "cannot run $INSTALLER" \
            "is ${TMPDIR:-/tmp} mounted noexec? Set TMPDIR to another directory and run again" ;;
    esac
    return "$_rc"
}

main "$@" || exit
