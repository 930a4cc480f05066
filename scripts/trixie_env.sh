#!/usr/bin/env bash
# A Debian 13 (trixie) folder for what Debian 12 is too old for: a spirv-val
# that knows CooperativeMatrixKHR (SPIRV-Tools 2025.1; 2023.1 rejects
# capability 6022) and a lavapipe with VK_KHR_cooperative_matrix (Mesa 26.1
# from trixie-backports; Mesa 22.3 has none). Everything comes from Debian's
# own packages. Binaries built on Debian 12 run inside it through chroot, no
# mounts needed: the folder holds the shared libraries our runtime-only
# binaries load (libvulkan1, libstdc++6, libpcre2-8-0 from trixie; utf8proc's
# soname 2 only exists in Debian 12, so its libutf8proc2 package is added).
#
#   scripts/trixie_env.sh ensure   create the folder, or reuse it when its stamp
#                                  (package spec + installed versions) matches
#   scripts/trixie_env.sh path     print the folder's path
#   scripts/trixie_env.sh run [--in PATH]... -- CMD [ARG]...
#       copies each PATH (file or folder) into the folder at the same absolute
#       path, runs CMD inside it as root (cwd /, environment: PATH, HOME, a
#       capped Mesa shader cache and the caller's TESSERA_* variables), then
#       removes the copies
#
# The folder is $TESSERA_TRIXIE_DIR, by default /var/cache/tessera/trixie:
# outside the work tree, so CI's fresh clones on the same machine reuse it.
# Creating it needs root, debootstrap (scripts/setup.sh) and Debian's mirror
# (debootstrap's default, or $TESSERA_DEBIAN_MIRROR): about a minute and
# ~750 MB. llvmpipe offers cooperative matrices only at its default vector
# width, so LP_NATIVE_VECTOR_WIDTH is never passed in.
set -euo pipefail

DIR="${TESSERA_TRIXIE_DIR:-/var/cache/tessera/trixie}"
SUITE=trixie
# name, and the lowest version that has what we need
PKGS=(mesa-vulkan-drivers:26.1 spirv-tools:2025.1~ vulkan-validationlayers:1.4 libvulkan1:1.4
      libstdc++6:14 libpcre2-8-0:10.42)
BACKPORTS=(mesa-vulkan-drivers)  # installed with -t trixie-backports
FOREIGN=(libutf8proc2)           # Debian 12 packages (from the host's apt) installed into the folder
SPEC="tessera-trixie 1: ${PKGS[*]} backports: ${BACKPORTS[*]} bookworm: ${FOREIGN[*]}"
STAMP="$DIR/.tessera-stamp"

die() { echo "trixie_env: $*" >&2; exit 1; }

names() { local p; for p in "${PKGS[@]}" "${FOREIGN[@]}"; do echo "${p%%:*}"; done; }

installed_versions() { # ROOT
  chroot "$1" dpkg-query -W -f='${Package} ${Version}\n' $(names) 2>/dev/null | sort
}

stamp_ok() {
  [ -f "$STAMP" ] || return 1
  [ "$(head -n1 "$STAMP")" = "$SPEC" ] || return 1
  [ "$(tail -n +2 "$STAMP")" = "$(installed_versions "$DIR")" ]
}

build() { # TMP
  local tmp="$1" p name min have
  command -v debootstrap >/dev/null || die "debootstrap is not installed (bash scripts/setup.sh installs it)"
  echo "trixie_env: creating $DIR (debootstrap --variant=minbase $SUITE; about a minute)" >&2
  debootstrap --variant=minbase "$SUITE" "$tmp" ${TESSERA_DEBIAN_MIRROR:-} >"$tmp.log" 2>&1 ||
    die "debootstrap of $SUITE failed (is Debian's mirror reachable?); last lines of $tmp.log:
$(tail -n 5 "$tmp.log")"
  # trixie-backports from the mirror debootstrap used.
  sed "s/ $SUITE / $SUITE-backports /" "$tmp/etc/apt/sources.list" >"$tmp/etc/apt/sources.list.d/backports.list"
  local apt=(chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends)
  "${apt[@]}" update >>"$tmp.log" 2>&1 || die "apt-get update inside $tmp failed; see $tmp.log"
  "${apt[@]}" install -t "$SUITE-backports" "${BACKPORTS[@]}" >>"$tmp.log" 2>&1 ||
    die "installing ${BACKPORTS[*]} from $SUITE-backports failed; see $tmp.log"
  "${apt[@]}" install $(names | grep -vxF -f <(printf '%s\n' "${BACKPORTS[@]}" "${FOREIGN[@]}")) >>"$tmp.log" 2>&1 ||
    die "installing the $SUITE packages failed; see $tmp.log"
  mkdir -p "$tmp/tmp/foreign"
  (cd "$tmp/tmp/foreign" && { apt-get download -qq "${FOREIGN[@]}" 2>/dev/null ||
     { apt-get update -qq && apt-get download -qq "${FOREIGN[@]}"; }; }) >>"$tmp.log" 2>&1 ||
    die "apt-get download ${FOREIGN[*]} (Debian 12) failed; see $tmp.log"
  chroot "$tmp" sh -c 'dpkg -i /tmp/foreign/*.deb' >>"$tmp.log" 2>&1 || die "dpkg -i ${FOREIGN[*]} failed; see $tmp.log"
  rm -rf "$tmp/tmp/foreign" "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*_Packages*
  for p in "${PKGS[@]}"; do
    name="${p%%:*}" min="${p#*:}"
    have=$(chroot "$tmp" dpkg-query -W -f='${Version}' "$name" 2>/dev/null) || die "$name is not installed in $tmp"
    dpkg --compare-versions "$have" ge "$min" || die "$name $have in $tmp is older than $min"
  done
  { echo "$SPEC"; installed_versions "$tmp"; } >"$tmp/.tessera-stamp"
}

ensure() {
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot)"
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock 9
  if stamp_ok; then return 0; fi
  local tmp="$DIR.tmp"
  rm -rf "$tmp" "$DIR"
  build "$tmp"
  mv "$tmp" "$DIR"
  rm -f "$tmp.log"
  echo "trixie_env: ready: $DIR ($(du -sh "$DIR" | cut -f1))" >&2
  sed 's/^/  /' "$STAMP" >&2
}

run() {
  local ins=() p abs
  while [ $# -gt 0 ]; do
    case "$1" in
      --in) [ $# -ge 2 ] || die "--in needs a path"; ins+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || die "run: no command"
  stamp_ok || die "$DIR is missing or out of date: run 'scripts/trixie_env.sh ensure' first"
  exec 9>"$DIR.lock"
  flock 9
  local copied=()
  for p in "${ins[@]}"; do
    [ -e "$p" ] || die "--in $p: no such file or folder"
    abs=$(realpath "$p")
    case "$abs" in /|/usr|/usr/*|/lib*|/bin|/bin/*|/etc|/etc/*|/var|/sbin*) die "--in $abs: a system path";; esac
    rm -rf "$DIR$abs"
    mkdir -p "$(dirname "$DIR$abs")"
    cp -a "$abs" "$DIR$abs"
    copied+=("$DIR$abs")
  done
  # Mesa keeps compiled shaders in /root/.cache of the folder (reruns skip
  # llvmpipe's compiles); capped so that the kept folder stays small.
  local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
              MESA_SHADER_CACHE_MAX_SIZE=128M)
  local name
  for name in $(compgen -e); do
    case "$name" in TESSERA_*) envs+=("$name=${!name}") ;; esac
  done
  local rc=0
  chroot "$DIR" /usr/bin/env -i "${envs[@]}" "$@" || rc=$?
  for p in "${copied[@]}"; do rm -rf "$p"; rmdir -p --ignore-fail-on-non-empty "$(dirname "$p")" 2>/dev/null || true; done
  return $rc
}

case "${1:-}" in
  ensure) ensure ;;
  path) echo "$DIR" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 ensure | path | run [--in PATH]... -- CMD [ARG]..." >&2; exit 2 ;;
esac
