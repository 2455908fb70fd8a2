#!/bin/sh
# shellcheck shell=dash
#
# Installs the prebuilt x86_64-hyperlight-none sysroot into a Rust toolchain and the
# `hyperlight-run` runner into cargo's bin directory:
#
#     curl --proto '=https' --tlsv1.2 -sSf <dist server>/install.sh | sh -s -- -y
#
# Every file is checked against the release's sha256 before the toolchain is touched; archives
# are unpacked by the release's own `hyperlight-unpack` (which refuses links, devices and names
# outside the archive, and is fuzzed), never by tar; the sysroot is swapped in by rename (a
# killed run leaves the previous state, which the next run cleans up), and the same install
# records as rust-installer are written, so `--uninstall` removes exactly what was installed.
# Run with --help for the options and exit codes.
#
# All logic lives in functions and the script's last line calls main, so a download that
# stops half-way through this file runs nothing.

set -u

# The project's GitHub Releases; `latest/download/<file>` serves the newest release's files.
DEFAULT_DIST_SERVER="https://github.com/example-org/hyperlight-none/releases/latest/download"

TARGET="x86_64-hyperlight-none"
COMPONENT="rust-std-x86_64-hyperlight-none"
RUNNER="hyperlight-run"
UNPACKER="hyperlight-unpack"
MANIFEST_VERSION="1"

# Exit codes (also listed by --help and in the README).
EXIT_USAGE=2      # unknown option, or confirmation needed but no terminal (use -y)
EXIT_PLATFORM=3   # not x86-64 Linux, or a required command (curl/wget, sha256sum, ...) is missing
EXIT_TOOLCHAIN=4  # no rustc found, the toolchain does not exist, or its sysroot is not writable
EXIT_NO_SYSROOT=5 # the release has no sysroot for this exact rustc (release + commit)
EXIT_DOWNLOAD=6   # a download failed: HTTP error, network error, truncated file
EXIT_VERIFY=7     # a file does not match its sha256, or the manifest/archive is malformed
EXIT_INSTALL=8    # writing into the toolchain or the bin directory failed

usage() {
    cat <<EOF
install.sh: install the x86_64-hyperlight-none target (prebuilt core/alloc) and hyperlight-run

USAGE:
    sh install.sh [OPTIONS]
    curl --proto '=https' --tlsv1.2 -sSf <dist server>/install.sh | sh -s -- [OPTIONS]

OPTIONS:
    -y                    Do not ask for confirmation
    -q                    Quiet: no progress bars, only warnings and errors
    --toolchain T         Install into rustup toolchain T (default: the rustc on PATH, or \$RUSTC,
                          as selected in the current directory, rust-toolchain.toml included)
    --dist-server URL     Where manifest.json and the tarballs are
                          (default: \$HYPERLIGHT_DIST_SERVER, else $DEFAULT_DIST_SERVER)
    --no-runner           Do not install or update hyperlight-run
    --uninstall           Remove what this installer installed (sysroot and records; the runner
                          too unless another rustup toolchain still has the target)
    -h, --help            Print this help

ENVIRONMENT:
    HYPERLIGHT_DIST_SERVER   Default for --dist-server
    HYPERLIGHT_DOWNLOADER    Force "curl" or "wget" (default: curl if installed, else wget)
    RUSTC                    The rustc to install for when --toolchain is not given
    CARGO_INSTALL_ROOT, CARGO_HOME
                             hyperlight-run goes to \$CARGO_INSTALL_ROOT/bin, else \$CARGO_HOME/bin,
                             else ~/.cargo/bin (as with cargo install)

EXIT CODES:
    0  installed, already installed, or uninstalled
    1  unexpected failure
    $EXIT_USAGE  bad usage, or confirmation needed without a terminal (pass -y)
    $EXIT_PLATFORM  unsupported platform (only x86-64 Linux) or a required command missing
    $EXIT_TOOLCHAIN  no usable rustc/toolchain, or its sysroot is not writable
    $EXIT_NO_SYSROOT  no prebuilt sysroot for this exact rustc (the message lists the available ones)
    $EXIT_DOWNLOAD  download failed (HTTP error, network error, truncated file)
    $EXIT_VERIFY  verification failed (sha256 mismatch, malformed manifest or archive)
    $EXIT_INSTALL  writing into the toolchain or the bin directory failed
In every failing case the toolchain is left as it was.
EOF
}

# ---------------------------------------------------------------------------------------------
# Output and errors

say() {
    if [ "$QUIET" = no ]; then
        printf 'info: %s\n' "$1" >&2
    fi
}

warn() {
    printf 'warning: %s\n' "$1" >&2
}

# die CODE MESSAGE...: print the message and exit with CODE (the EXIT trap cleans up).
die() {
    _e_code=$1
    shift
    printf 'error: %s\n' "$1" >&2
    shift
    for _e_line in "$@"; do
        printf '       %s\n' "$_e_line" >&2
    done
    exit "$_e_code"
}

need_cmd() {
    if ! command -v "$1" >/dev/null 2>&1; then
        die "$EXIT_PLATFORM" "this installer needs '$1'; install it with your package manager and run again"
    fi
}

cleanup() {
    if [ -n "$LOCK_DIR" ]; then
        rm -rf "$LOCK_DIR"
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
    if [ -n "$STAGED_RUNNER" ] && [ -f "$STAGED_RUNNER" ]; then
        rm -f "$STAGED_RUNNER"
    fi
}

# ---------------------------------------------------------------------------------------------
# Platform, tools and the toolchain

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
    for _cmd in uname mktemp awk sed grep find sort head tr cat cp mv rm mkdir rmdir chmod wc; do
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

# rustc ARGS...: the toolchain's rustc (`rustc +T` with --toolchain).
rustc_cmd() {
    if [ -n "$TOOLCHAIN" ]; then
        "$RUSTC_BIN" "+$TOOLCHAIN" "$@"
    else
        "$RUSTC_BIN" "$@"
    fi
}

find_toolchain() {
    if [ -n "$TOOLCHAIN" ]; then
        RUSTC_BIN=rustc
        if ! command -v rustup >/dev/null 2>&1; then
            die "$EXIT_TOOLCHAIN" "--toolchain needs rustup, which is not on PATH" \
                "install rustup (https://rustup.rs), or drop --toolchain to use the rustc on PATH"
        fi
        _what="toolchain '$TOOLCHAIN'"
        _fix="install it with: rustup toolchain install $TOOLCHAIN"
    else
        RUSTC_BIN=${RUSTC:-rustc}
        _what="'$RUSTC_BIN'"
        _fix="install Rust first (https://rustup.rs), or pass --toolchain T"
    fi
    if [ -z "$TOOLCHAIN" ] && ! command -v "$RUSTC_BIN" >/dev/null 2>&1; then
        die "$EXIT_TOOLCHAIN" "no rustc found on PATH" "$_fix"
    fi
    if ! RUSTC_VV=$(rustc_cmd -vV 2>"$WORK/rustc.err"); then
        die "$EXIT_TOOLCHAIN" "$_what does not run: $(head -n 3 "$WORK/rustc.err")" "$_fix"
    fi
    RUSTC_RELEASE=$(printf '%s\n' "$RUSTC_VV" | sed -n 's/^release: //p')
    RUSTC_COMMIT=$(printf '%s\n' "$RUSTC_VV" | sed -n 's/^commit-hash: //p')
    RUSTC_DATE=$(printf '%s\n' "$RUSTC_VV" | sed -n 's/^commit-date: //p')
    if [ -z "$RUSTC_RELEASE" ]; then
        die "$EXIT_TOOLCHAIN" "$_what -vV printed no release line" "$_fix"
    fi
    if ! SYSROOT=$(rustc_cmd --print sysroot) || [ -z "$SYSROOT" ]; then
        die "$EXIT_TOOLCHAIN" "$_what --print sysroot failed" "$_fix"
    fi
    RUSTLIB="$SYSROOT/lib/rustlib"
    if [ ! -d "$RUSTLIB" ]; then
        die "$EXIT_TOOLCHAIN" "$RUSTLIB does not exist: $_what does not look like a Rust toolchain" "$_fix"
    fi
}

check_writable() {
    if [ ! -w "$RUSTLIB" ]; then
        die "$EXIT_TOOLCHAIN" "cannot write to $RUSTLIB" \
            "rustup toolchains live in your home directory; for a system-wide rustc, run this as its owner (e.g. with sudo)"
    fi
}

# Sets BIN_DIR where `cargo install` would put a binary.
find_bin_dir() {
    if [ -n "${CARGO_INSTALL_ROOT:-}" ]; then
        BIN_DIR="$CARGO_INSTALL_ROOT/bin"
    elif [ -n "${CARGO_HOME:-}" ]; then
        BIN_DIR="$CARGO_HOME/bin"
    elif [ -n "${HOME:-}" ]; then
        BIN_DIR="$HOME/.cargo/bin"
    else
        die "$EXIT_INSTALL" "none of CARGO_INSTALL_ROOT, CARGO_HOME and HOME is set" "set CARGO_HOME and run again"
    fi
}

# Takes the same lock as `cargo xtask install` (flock on lib/rustlib), when flock exists.
# Without flock: a lock directory holding the owner's pid, removed on exit (cleanup); one whose
# owner is gone (a killed install) is stale and taken over.
lock_rustlib() {
    if command -v flock >/dev/null 2>&1; then
        exec 9<"$RUSTLIB"
        if ! flock -n 9; then
            say "waiting for another install into $RUSTLIB to finish"
            flock 9
        fi
        return
    fi
    _l_dir="$RUSTLIB/.$TARGET.install-lock"
    _l_waiting=no
    _l_unowned=0
    while ! mkdir "$_l_dir" 2>/dev/null; do
        _l_owner=$(cat "$_l_dir/pid" 2>/dev/null || true)
        # No pid for several seconds: its owner was killed between mkdir and writing it.
        if [ -z "$_l_owner" ]; then
            _l_unowned=$((_l_unowned + 1))
        fi
        if { [ -n "$_l_owner" ] && ! kill -0 "$_l_owner" 2>/dev/null; } || [ "$_l_unowned" -gt 3 ]; then
            rm -rf "$_l_dir"
            _l_unowned=0
            continue
        fi
        if [ "$_l_waiting" = no ]; then
            say "waiting for another install into $RUSTLIB to finish"
            _l_waiting=yes
        fi
        sleep 1
    done
    LOCK_DIR=$_l_dir
    echo "$$" >"$_l_dir/pid"
}

# ---------------------------------------------------------------------------------------------
# Hashes, downloads and the manifest

sha256_of() {
    case $SHA256 in
        sha256sum) _x_out=$(sha256sum "$1") ;;
        shasum) _x_out=$(shasum -a 256 "$1") ;;
        *) _x_out=$(openssl dgst -sha256 -r "$1") ;;
    esac
    printf '%s\n' "$_x_out" | sed 's/^\\//; s/[ *].*//'
}

file_size() {
    wc -c <"$1" | tr -d ' '
}

# download URL FILE [progress]: fetch URL into FILE; exits with EXIT_DOWNLOAD on any failure.
download() {
    _d_url=$1
    _d_file=$2
    _d_progress=${3:-no}
    rm -f "$_d_file"
    if [ "$DOWNLOADER" = curl ]; then
        if [ "$_d_progress" = yes ] && [ "$QUIET" = no ]; then
            _d_show=--progress-bar
        else
            _d_show=--silent
        fi
        case $_d_url in
            https://*) set -- --proto '=https' --tlsv1.2 ;;
            *) set -- ;;
        esac
        _d_status=$(curl "$@" "$_d_show" --show-error --location --output "$_d_file" \
            --write-out '%{http_code}' "$_d_url" 2>"$WORK/download.err")
        _d_rc=$?
        if [ "$_d_rc" -ne 0 ]; then
            case $_d_rc in
                18) _d_why="the transfer was cut short (truncated download)" ;;
                *) _d_why=$(sed -n '$p' "$WORK/download.err") ;;
            esac
            die "$EXIT_DOWNLOAD" "download of $_d_url failed: $_d_why" \
                "check your connection and the dist server ($DIST_SERVER), then run again"
        fi
    else
        wget --server-response --output-document="$_d_file" "$_d_url" 2>"$WORK/download.err"
        _d_rc=$?
        _d_status=$(awk '$1 ~ /^HTTP\// { s = $2 } END { print s }' "$WORK/download.err")
        if [ "$_d_rc" -ne 0 ] && [ "$_d_rc" -ne 8 ]; then
            die "$EXIT_DOWNLOAD" "download of $_d_url failed (wget exit code $_d_rc): $(sed -n '$p' "$WORK/download.err")" \
                "check your connection and the dist server ($DIST_SERVER), then run again"
        fi
    fi
    case $_d_status in
        2??) ;;
        404) die "$EXIT_DOWNLOAD" "download of $_d_url failed: HTTP 404 (not found)" \
            "check --dist-server / HYPERLIGHT_DIST_SERVER ($DIST_SERVER)" ;;
        5??) die "$EXIT_DOWNLOAD" "download of $_d_url failed: HTTP $_d_status (server error)" \
            "the dist server has a problem; try again later" ;;
        *) die "$EXIT_DOWNLOAD" "download of $_d_url failed: HTTP ${_d_status:-(no answer)}" \
            "check --dist-server / HYPERLIGHT_DIST_SERVER ($DIST_SERVER)" ;;
    esac
}

# Turns a JSON document into `path<TAB>value` lines (`sysroots.0.release<TAB>1.95.0`).
flatten_json() {
    awk '
    function fail(what) { print "!error\t" what " at byte " pos; exit 1 }
    function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1))) pos++ }
    function str(   out, c, e) {
        pos++
        out = ""
        while (pos <= n) {
            c = substr(s, pos, 1)
            if (c == "\"") { pos++; return out }
            # JSON has no raw control characters in strings; a newline or tab would also
            # break the path<TAB>value lines this prints.
            if (c ~ /[\001-\037]/) fail("control character in a string")
            if (c == "\\") {
                e = substr(s, pos + 1, 1)
                if (e == "u") { out = out "?"; pos += 6; continue }
                if (e == "n") e = " "
                if (e == "t") e = " "
                out = out e
                pos += 2
                continue
            }
            out = out c
            pos++
        }
        fail("unterminated string")
    }
    function value(path,   c, key, i, lit) {
        ws()
        c = substr(s, pos, 1)
        if (c == "{") {
            pos++; ws()
            if (substr(s, pos, 1) == "}") { pos++; return }
            while (1) {
                ws()
                if (substr(s, pos, 1) != "\"") fail("expected a key")
                key = str(); ws()
                if (substr(s, pos, 1) != ":") fail("expected :")
                pos++
                # A repeated key would make readers disagree on which value counts.
                key = path == "" ? key : path "." key
                if (key in seen) fail("duplicate key " key)
                seen[key] = 1
                value(key)
                ws(); c = substr(s, pos, 1); pos++
                if (c == "}") return
                if (c != ",") fail("expected , or }")
            }
        } else if (c == "[") {
            pos++; ws()
            if (substr(s, pos, 1) == "]") { pos++; return }
            for (i = 0; ; i++) {
                value(path "." i)
                ws(); c = substr(s, pos, 1); pos++
                if (c == "]") return
                if (c != ",") fail("expected , or ]")
            }
        } else if (c == "\"") {
            printf "%s\t%s\n", path, str()
        } else {
            lit = ""
            while (pos <= n && index("-+.0123456789abcdefghijklmnopqrstuvwxyzE", substr(s, pos, 1))) {
                lit = lit substr(s, pos, 1); pos++
            }
            if (lit == "") fail("unexpected character")
            printf "%s\t%s\n", path, lit
        }
    }
    { s = s $0 "\n" }
    END { n = length(s); pos = 1; value(""); ws(); if (pos <= n) fail("trailing data") }
    ' "$1"
}

# mget KEY: the value of KEY in the flattened manifest.
mget() {
    awk -F '\t' -v k="$1" '$1 == k { print $2; exit }' "$FLAT"
}

fetch_manifest() {
    download "$DIST_SERVER/manifest.json" "$WORK/manifest.json"
    download "$DIST_SERVER/manifest.json.sha256" "$WORK/manifest.json.sha256"
    _m_expected=$(sed 's/[ *].*//; q' "$WORK/manifest.json.sha256")
    _m_actual=$(sha256_of "$WORK/manifest.json")
    if [ "$_m_expected" != "$_m_actual" ]; then
        die "$EXIT_VERIFY" "manifest.json from $DIST_SERVER does not match manifest.json.sha256" \
            "expected sha256 $_m_expected" \
            "actual sha256   $_m_actual" \
            "a release may be being published right now: try again in a few minutes; if it persists, report it"
    fi
    FLAT="$WORK/manifest.flat"
    if ! flatten_json "$WORK/manifest.json" >"$FLAT"; then
        die "$EXIT_VERIFY" "manifest.json from $DIST_SERVER is not valid JSON ($(sed -n 's/^!error	//p' "$FLAT"))"
    fi
    _m_version=$(mget manifest-version)
    case $_m_version in
        "$MANIFEST_VERSION" | "$MANIFEST_VERSION".*) ;;
        *) die "$EXIT_VERIFY" "manifest.json has version '$_m_version', which this installer does not know" \
            "download the newest install.sh from $DIST_SERVER/install.sh and run it instead" ;;
    esac
}

# A manifest URL must be a plain file name next to the manifest.
check_file_name() {
    case $1 in
        "" | . | .. | */* | *[!A-Za-z0-9._+-]*)
            die "$EXIT_VERIFY" "manifest.json names an unsafe file '$1'; refusing to download it" ;;
    esac
}

# Sets SYSROOT_INDEX to the manifest entry for this rustc, or explains what exists and exits.
pick_sysroot() {
    SYSROOT_INDEX=$(awk -F '\t' -v h="$RUSTC_COMMIT" '
        $1 ~ /^sysroots\.[0-9]+\.commit-hash$/ && $2 == h { split($1, p, "."); print p[2]; exit }
    ' "$FLAT")
    if [ -n "$SYSROOT_INDEX" ] && [ -n "$RUSTC_COMMIT" ]; then
        return 0
    fi
    _available=$(awk -F '\t' '
        $1 ~ /^sysroots\.[0-9]+\.release$/ { split($1, p, "."); r[p[2]] = $2; if (p[2] + 1 > n) n = p[2] + 1 }
        $1 ~ /^sysroots\.[0-9]+\.commit-hash$/ { split($1, p, "."); h[p[2]] = substr($2, 1, 9) }
        $1 ~ /^sysroots\.[0-9]+\.commit-date$/ { split($1, p, "."); d[p[2]] = $2 }
        END { for (i = 0; i < n; i++) printf "         rustc %s (commit %s, %s)\n", r[i], h[i], d[i] }
    ' "$FLAT")
    _stable=$(awk -F '\t' '$1 ~ /^sysroots\.[0-9]+\.release$/ && $2 ~ /^[0-9]+\.[0-9]+\.[0-9]+$/ { print $2; exit }' "$FLAT")
    {
        printf 'error: no prebuilt %s sysroot for your rustc %s (commit %s, %s)\n' \
            "$TARGET" "$RUSTC_RELEASE" "${RUSTC_COMMIT:-unknown}" "${RUSTC_DATE:-unknown date}"
        printf '       a prebuilt sysroot only works with the exact rustc that built it (E0514 otherwise).\n'
        if [ -n "$_available" ]; then
            printf '       %s has sysroots for:\n%s\n' "$DIST_SERVER" "$_available"
        else
            printf '       %s offers no sysroots at all.\n' "$DIST_SERVER"
        fi
        printf '       fix: use one of those toolchains: pin it in your guest project'"'"'s rust-toolchain.toml\n'
        printf '            ([toolchain] channel = "%s"), then run this installer again with --toolchain %s;\n' \
            "${_stable:-<release>}" "${_stable:-<release>}"
        printf '            or build the sysroot for your own toolchain from a checkout of the project:\n'
        printf '            cargo xtask install --toolchain %s\n' "${TOOLCHAIN:-<your toolchain>}"
    } >&2
    exit "$EXIT_NO_SYSROOT"
}

# ---------------------------------------------------------------------------------------------
# What is installed

# installed_sha256 ROOT LISTFILE: sha256 of `sha256sum` lines for the sorted files (paths
# relative to ROOT) named in LISTFILE; the manifest's installed-sha256.
installed_sha256() {
    _h_root=$1
    LC_ALL=C sort "$2" >"$WORK/listing.sorted"
    if [ ! -s "$WORK/listing.sorted" ]; then
        printf 'empty\n'
        return 0
    fi
    case $SHA256 in
        sha256sum | shasum)
            # One process for all files; both print `<sha256>  <path>` lines.
            set -- sha256sum
            if [ "$SHA256" = shasum ]; then set -- shasum -a 256; fi
            if ! (cd "$_h_root" && xargs "$@" <"$WORK/listing.sorted") >"$WORK/listing" 2>/dev/null; then
                printf 'missing\n'
                return 0
            fi
            ;;
        *)
            : >"$WORK/listing"
            while IFS= read -r _h_rel; do
                if [ ! -f "$_h_root/$_h_rel" ]; then
                    printf 'missing\n'
                    return 0
                fi
                printf '%s  %s\n' "$(sha256_of "$_h_root/$_h_rel")" "$_h_rel" >>"$WORK/listing"
            done <"$WORK/listing.sorted"
            ;;
    esac
    sha256_of "$WORK/listing"
}

# Every file under the installed target directory, relative to the sysroot, sorted.
installed_files() {
    (cd "$SYSROOT" && find "lib/rustlib/$TARGET" -type f) | LC_ALL=C sort
}

# rust-installer's record of the installed files.
render_records_manifest() {
    installed_files | sed 's/^/file:/'
}

records_match() {
    [ -f "$RUSTLIB/components" ] && grep -qx "$COMPONENT" "$RUSTLIB/components" &&
        [ -f "$RUSTLIB/manifest-$COMPONENT" ] &&
        [ "$(render_records_manifest)" = "$(cat "$RUSTLIB/manifest-$COMPONENT")" ]
}

write_records() {
    if ! render_records_manifest >"$RUSTLIB/manifest-$COMPONENT.tmp" ||
        ! mv -f "$RUSTLIB/manifest-$COMPONENT.tmp" "$RUSTLIB/manifest-$COMPONENT"; then
        die "$EXIT_INSTALL" "cannot write $RUSTLIB/manifest-$COMPONENT"
    fi
    if [ -f "$RUSTLIB/components" ] && grep -qx "$COMPONENT" "$RUSTLIB/components"; then
        return 0
    fi
    if ! {
        if [ -f "$RUSTLIB/components" ]; then
            grep -v '^$' "$RUSTLIB/components"
        fi
        printf '%s\n' "$COMPONENT"
    } >"$RUSTLIB/components.tmp" || ! mv -f "$RUSTLIB/components.tmp" "$RUSTLIB/components"; then
        die "$EXIT_INSTALL" "cannot write $RUSTLIB/components"
    fi
}

# Finishes or undoes an interrupted install (same rules as `cargo xtask install`).
recover() {
    _r_target="$RUSTLIB/$TARGET"
    _r_old="$RUSTLIB/.$TARGET.old"
    _r_new="$RUSTLIB/.$TARGET.new"
    if [ -d "$_r_old" ]; then
        if [ -d "$_r_target" ]; then
            say "finishing an interrupted install in $RUSTLIB"
            write_records
            rm -rf "$_r_old"
        else
            say "restoring the previous $TARGET after an interrupted install"
            mv "$_r_old" "$_r_target" || die "$EXIT_INSTALL" "cannot restore $_r_target from $_r_old"
        fi
    fi
    if [ -e "$_r_new" ]; then
        rm -rf "$_r_new"
    fi
    rm -f "$RUSTLIB/components.tmp" "$RUSTLIB/manifest-$COMPONENT.tmp"
}

# ---------------------------------------------------------------------------------------------
# Install

confirm() {
    if [ "$YES" = yes ]; then
        return 0
    fi
    if ! (: </dev/tty) 2>/dev/null; then
        die "$EXIT_USAGE" "no terminal to ask for confirmation; run again with -y (e.g. 'sh -s -- -y')"
    fi
    printf '%s\nProceed? [Y/n] ' "$1" >/dev/tty
    read -r _answer </dev/tty || _answer=n
    case $_answer in
        "" | y | Y | yes | Yes) ;;
        *) say "nothing installed"; exit 0 ;;
    esac
}

# verify_file FILE NAME SHA256 SIZE: check a downloaded file before anything is installed.
verify_file() {
    _v_size=$(file_size "$1")
    if [ "$_v_size" != "$4" ]; then
        die "$EXIT_DOWNLOAD" "$2 is truncated or too long: got $_v_size bytes, expected $4" \
            "the download was cut short or the dist server serves another file; run again"
    fi
    _v_sha=$(sha256_of "$1")
    if [ "$_v_sha" != "$3" ]; then
        die "$EXIT_VERIFY" "$2 is corrupt: its sha256 does not match the manifest" \
            "expected sha256 $3" \
            "actual sha256   $_v_sha" \
            "nothing was installed; run again, and report it if it persists"
    fi
}

# fetch_unpacker: download the release's hyperlight-unpack, check it against the manifest,
# and set UNPACK to it. Unpacking is left to this Rust binary (the code the fuzz target drives)
# rather than to tar, whose handling of hostile names and links varies between versions.
fetch_unpacker() {
    _f_url=$(mget unpacker.url)
    if [ -z "$_f_url" ]; then
        die "$EXIT_VERIFY" "the release has no $UNPACKER, which this installer unpacks archives with" \
            "the release is incomplete; nothing was installed; report it"
    fi
    check_file_name "$_f_url"
    say "downloading $_f_url"
    download "$DIST_SERVER/$_f_url" "$WORK/$_f_url"
    verify_file "$WORK/$_f_url" "$_f_url" "$(mget unpacker.sha256)" "$(mget unpacker.size)"
    chmod 755 "$WORK/$_f_url" || die "$EXIT_INSTALL" "cannot make $WORK/$_f_url executable"
    UNPACK="$WORK/$_f_url"
}

# unpack_archive TARBALL NAME DEST: unpack into the new directory DEST with $UNPACK, which writes
# nothing unless every member is a plain file or directory inside DEST.
unpack_archive() {
    "$UNPACK" "$1" "$3" 2>"$WORK/unpack.err"
    _a_rc=$?
    _a_why=$(sed -n '1s/^hyperlight-unpack: error: //p' "$WORK/unpack.err")
    case $_a_rc in
        0) ;;
        1) die "$EXIT_VERIFY" "cannot unpack $2: $_a_why" "nothing was installed" ;;
        126 | 127) die "$EXIT_INSTALL" "cannot run $UNPACK" \
            "is ${TMPDIR:-/tmp} mounted noexec? Set TMPDIR to another directory and run again" ;;
        *) die "$EXIT_INSTALL" "cannot unpack $2 into $3: ${_a_why:-exit code $_a_rc}" ;;
    esac
}

# unpack_sysroot TARBALL NAME: unpack into $WORK and check the rust-installer layout; sets PAYLOAD.
unpack_sysroot() {
    unpack_archive "$1" "$2" "$WORK/sysroot"
    _u_pkg="$WORK/sysroot/${2%.tar.gz}"
    if ! grep -qx "$COMPONENT" "$_u_pkg/components" 2>/dev/null; then
        die "$EXIT_VERIFY" "$2 does not contain the $COMPONENT component"
    fi
    PAYLOAD="$_u_pkg/$COMPONENT"
    if [ ! -f "$PAYLOAD/manifest.in" ]; then
        die "$EXIT_VERIFY" "$2 has no $COMPONENT/manifest.in, so it is not a rust-installer package"
    fi
    : >"$WORK/payload.list"
    while IFS= read -r _u_line; do
        case $_u_line in
            file:lib/rustlib/"$TARGET"/*) ;;
            *) die "$EXIT_VERIFY" "$2 lists '$_u_line', which is outside lib/rustlib/$TARGET" ;;
        esac
        _u_rel=${_u_line#file:}
        case $_u_rel in
            *..* | *[!A-Za-z0-9._/+-]*) die "$EXIT_VERIFY" "$2 lists an unsafe path '$_u_rel'" ;;
        esac
        printf '%s\n' "$_u_rel" >>"$WORK/payload.list"
    done <"$PAYLOAD/manifest.in"
}

install_sysroot() {
    _s_target="$RUSTLIB/$TARGET"
    _s_old="$RUSTLIB/.$TARGET.old"
    _s_new="$RUSTLIB/.$TARGET.new"
    # Copy the verified payload as new files (never writing into existing ones), then check that
    # the staged tree is exactly what the manifest promised before it replaces anything.
    if ! cp -R "$PAYLOAD/lib/rustlib/$TARGET" "$_s_new" || ! chmod -R u+rwX,go+rX,go-w "$_s_new"; then
        rm -rf "$_s_new"
        die "$EXIT_INSTALL" "cannot write $_s_new"
    fi
    sed "s|^lib/rustlib/$TARGET/||" "$WORK/payload.list" | LC_ALL=C sort >"$WORK/staged.expected"
    (cd "$_s_new" && find . ! -type d) | sed 's|^\./||' | LC_ALL=C sort >"$WORK/staged.list"
    if [ "$(cat "$WORK/staged.list")" != "$(cat "$WORK/staged.expected")" ]; then
        rm -rf "$_s_new"
        die "$EXIT_VERIFY" "the sysroot archive holds files its manifest.in does not list (or lacks listed ones)" \
            "the release is inconsistent; nothing was installed; report it"
    fi
    if [ -d "$_s_target" ]; then
        mv "$_s_target" "$_s_old" || die "$EXIT_INSTALL" "cannot move $_s_target aside"
    fi
    mv "$_s_new" "$_s_target" || die "$EXIT_INSTALL" "cannot move $_s_new into place"
    write_records
    rm -rf "$_s_old"
}

install_runner() {
    mkdir -p "$BIN_DIR" || die "$EXIT_INSTALL" "cannot create $BIN_DIR"
    STAGED_RUNNER="$BIN_DIR/.$RUNNER.tmp"
    if ! cp "$1" "$STAGED_RUNNER" || ! chmod 755 "$STAGED_RUNNER" ||
        ! mv -f "$STAGED_RUNNER" "$BIN_DIR/$RUNNER"; then
        die "$EXIT_INSTALL" "cannot write $BIN_DIR/$RUNNER"
    fi
    STAGED_RUNNER=""
}

print_guest_config() {
    if [ "$QUIET" = yes ]; then
        return 0
    fi
    cat >&2 <<EOF

$TARGET is ready for rustc $RUSTC_RELEASE. In a guest project, put this in .cargo/config.toml:

    [build]
    target = "$TARGET"

    [target.$TARGET]
    rustflags = ["-Zunstable-options", "--cfg=hyperlight", "--check-cfg=cfg(hyperlight)"]
    runner = "$RUNNER"

    [env]
    # Stable Rust needs this since 1.95 for custom targets; nightly does not.
    RUSTC_BOOTSTRAP = "1"

and pin the toolchain in rust-toolchain.toml. Then \`cargo build\` and \`cargo run\` work as usual.
The full template, with the settings for C code in official Hyperlight guests:
    $DIST_SERVER/cargo-config.toml
EOF
    case :${PATH:-}: in
        *:"$BIN_DIR":*) ;;
        *) warn "$BIN_DIR is not on PATH; add it so that cargo finds $RUNNER" ;;
    esac
}

do_install() {
    check_writable
    lock_rustlib
    recover
    fetch_manifest
    pick_sysroot
    _i=$SYSROOT_INDEX
    _url=$(mget "sysroots.$_i.url")
    _sha=$(mget "sysroots.$_i.sha256")
    _size=$(mget "sysroots.$_i.size")
    _installed=$(mget "sysroots.$_i.installed-sha256")
    check_file_name "$_url"

    _need_sysroot=yes
    if [ -d "$RUSTLIB/$TARGET" ]; then
        installed_files >"$WORK/installed.list"
        if [ "$(installed_sha256 "$SYSROOT" "$WORK/installed.list")" = "$_installed" ]; then
            _need_sysroot=no
            if ! records_match; then
                say "repairing the install records in $RUSTLIB"
                write_records
            fi
        fi
    fi

    _need_runner=no
    if [ "$NO_RUNNER" = no ]; then
        _runner_url=$(mget runner.url)
        if [ -z "$_runner_url" ]; then
            warn "this release has no $RUNNER; installing the sysroot only"
        else
            check_file_name "$_runner_url"
            _runner_bin_sha=$(mget runner.bin-sha256)
            if [ ! -f "$BIN_DIR/$RUNNER" ] || [ "$(sha256_of "$BIN_DIR/$RUNNER")" != "$_runner_bin_sha" ]; then
                _need_runner=yes
            fi
        fi
    fi

    if [ "$_need_sysroot" = no ] && [ "$_need_runner" = no ]; then
        say "$TARGET for rustc $RUSTC_RELEASE is already installed in $SYSROOT"
        if [ "$NO_RUNNER" = no ] && [ -n "$_runner_url" ]; then
            say "$RUNNER is up to date in $BIN_DIR"
        fi
        return 0
    fi

    _plan=""
    if [ "$_need_sysroot" = yes ]; then
        _plan="$_plan
  $TARGET sysroot for rustc $RUSTC_RELEASE -> $RUSTLIB/$TARGET"
    fi
    if [ "$_need_runner" = yes ]; then
        _plan="$_plan
  $RUNNER $(mget runner.version) -> $BIN_DIR/$RUNNER"
    fi
    confirm "This will install:$_plan"

    # Download and verify everything before the toolchain is touched.
    fetch_unpacker
    if [ "$_need_sysroot" = yes ]; then
        say "downloading $_url"
        download "$DIST_SERVER/$_url" "$WORK/$_url" yes
        verify_file "$WORK/$_url" "$_url" "$_sha" "$_size"
        unpack_sysroot "$WORK/$_url" "$_url"
        if [ "$(installed_sha256 "$PAYLOAD" "$WORK/payload.list")" != "$_installed" ]; then
            die "$EXIT_VERIFY" "the files in $_url do not match the manifest's installed-sha256" \
                "the release is inconsistent; report it"
        fi
    fi
    if [ "$_need_runner" = yes ]; then
        say "downloading $_runner_url"
        download "$DIST_SERVER/$_runner_url" "$WORK/$_runner_url" yes
        verify_file "$WORK/$_runner_url" "$_runner_url" "$(mget runner.sha256)" "$(mget runner.size)"
        unpack_archive "$WORK/$_runner_url" "$_runner_url" "$WORK/runner"
        _runner_bin="$WORK/runner/${_runner_url%.tar.gz}/bin/$RUNNER"
        if [ ! -f "$_runner_bin" ] || [ "$(sha256_of "$_runner_bin")" != "$_runner_bin_sha" ]; then
            die "$EXIT_VERIFY" "$_runner_url does not contain the $RUNNER the manifest describes"
        fi
    fi

    if [ "$_need_sysroot" = yes ]; then
        install_sysroot
        say "installed $TARGET into $RUSTLIB/$TARGET"
    else
        say "$TARGET for rustc $RUSTC_RELEASE is already installed in $SYSROOT"
    fi
    if [ "$_need_runner" = yes ]; then
        install_runner "$_runner_bin"
        say "installed $RUNNER into $BIN_DIR"
    fi
    print_guest_config
}

# ---------------------------------------------------------------------------------------------
# Uninstall

# Is the component installed in a rustup toolchain other than ours?
other_toolchain_has_target() {
    _o_home=${RUSTUP_HOME:-${HOME:-}/.rustup}
    _o_ours=$(cd -P "$SYSROOT" && pwd -P)
    for _o_tc in "$_o_home"/toolchains/*; do
        [ -d "$_o_tc" ] || continue
        _o_real=$(cd -P "$_o_tc" && pwd -P) || continue
        if [ "$_o_real" != "$_o_ours" ] && grep -qx "$COMPONENT" "$_o_real/lib/rustlib/components" 2>/dev/null; then
            printf '%s\n' "$_o_real"
            return 0
        fi
    done
    return 1
}

do_uninstall() {
    check_writable
    lock_rustlib
    recover
    _n_record="$RUSTLIB/manifest-$COMPONENT"
    if [ -f "$_n_record" ]; then
        while IFS= read -r _n_line; do
            case $_n_line in
                file:lib/rustlib/"$TARGET"/*) ;;
                *) continue ;;
            esac
            _n_rel=${_n_line#file:}
            case $_n_rel in
                *..*) continue ;;
            esac
            rm -f "$SYSROOT/$_n_rel" || die "$EXIT_INSTALL" "cannot remove $SYSROOT/$_n_rel"
        done <"$_n_record"
        if [ -d "$RUSTLIB/$TARGET" ]; then
            find "$RUSTLIB/$TARGET" -depth -type d -exec rmdir {} \; 2>/dev/null
        fi
        rm -f "$_n_record"
        if [ -f "$RUSTLIB/components" ]; then
            if ! { grep -vx "$COMPONENT" "$RUSTLIB/components" || :; } >"$RUSTLIB/components.tmp" ||
                ! mv -f "$RUSTLIB/components.tmp" "$RUSTLIB/components"; then
                die "$EXIT_INSTALL" "cannot write $RUSTLIB/components"
            fi
        fi
        say "removed $TARGET from $SYSROOT"
    else
        say "$TARGET is not installed in $SYSROOT"
    fi
    if [ "$NO_RUNNER" = no ] && [ -f "$BIN_DIR/$RUNNER" ]; then
        if _n_other=$(other_toolchain_has_target); then
            say "kept $BIN_DIR/$RUNNER: the toolchain at $_n_other still uses it"
        else
            rm -f "$BIN_DIR/$RUNNER" || die "$EXIT_INSTALL" "cannot remove $BIN_DIR/$RUNNER"
            say "removed $BIN_DIR/$RUNNER"
        fi
    fi
}

# ---------------------------------------------------------------------------------------------

main() {
    YES=no
    QUIET=no
    TOOLCHAIN=""
    NO_RUNNER=no
    UNINSTALL=no
    DIST_SERVER=${HYPERLIGHT_DIST_SERVER:-$DEFAULT_DIST_SERVER}
    WORK=""
    UNPACK=""
    STAGED_RUNNER=""
    LOCK_DIR=""
    while [ $# -gt 0 ]; do
        case $1 in
            -y) YES=yes ;;
            -q) QUIET=yes ;;
            -h | --help)
                usage
                return 0
                ;;
            --no-runner) NO_RUNNER=yes ;;
            --uninstall) UNINSTALL=yes ;;
            --toolchain | --dist-server)
                if [ $# -lt 2 ] || [ -z "$2" ]; then
                    die "$EXIT_USAGE" "$1 needs a value (see --help)"
                fi
                if [ "$1" = --toolchain ]; then TOOLCHAIN=$2; else DIST_SERVER=$2; fi
                shift
                ;;
            --toolchain=*) TOOLCHAIN=${1#*=} ;;
            --dist-server=*) DIST_SERVER=${1#*=} ;;
            *) die "$EXIT_USAGE" "unknown option '$1' (see --help)" ;;
        esac
        shift
    done
    DIST_SERVER=${DIST_SERVER%/}
    case $DIST_SERVER in
        https://*) ;;
        http://*) warn "the dist server $DIST_SERVER is not HTTPS: downloads are only as trustworthy as that connection" ;;
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
    find_toolchain
    find_bin_dir
    if [ "$UNINSTALL" = yes ]; then
        do_uninstall
    else
        do_install
    fi
}

main "$@" || exit 1
