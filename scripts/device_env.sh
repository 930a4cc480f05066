# Sourced (from the repository root) by the scripts that run on the lent GPU
# machine: unpacks the Vulkan loader carried in .gl/ (the image has none) and
# points it at NVIDIA's driver when the image keeps that ICD off the default path.
# The loader and the GL vendor-neutral libraries NVIDIA's ICD needs go to /
# (the device README's list); other carried libraries the runtime links
# (libutf8proc, libpcre2 of Debian 12) go to a folder of their own on
# LD_LIBRARY_PATH, never over the image's.
mkdir -p /tmp/tessera-libs
for f in .gl/*.deb; do
  case "$(basename "$f")" in
  libvulkan1_* | libegl1_* | libglvnd0_* | libopengl0_* | libgl1_* | libglx0_* | libgles2_*) dpkg -x "$f" / ;;
  *) dpkg -x "$f" /tmp/tessera-libs ;;
  esac
done
ldconfig
export LD_LIBRARY_PATH=/tmp/tessera-libs/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
