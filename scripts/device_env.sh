# Sourced (from the repository root) by the scripts that run on the lent GPU
# machine: unpacks the Vulkan loader carried in .gl/ (the image has none) and
# points it at NVIDIA's driver when the image keeps that ICD off the default path.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
