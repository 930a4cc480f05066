#!/usr/bin/env bash
# The real-PEFT parity test (test/e2e/test_peft_parity.py) with tessera on the lent GPU.
# Here:  TESSERA_KEEP_PLANS=build/peft-plans /usr/bin/python3 test/e2e/test_peft_parity.py
# There (device tool, carry .gl build/bin/tessera-rt build/peft-plans): bash bench/peft_parity_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device_env.sh
build/bin/tessera-rt devices 2>&1 | head -3
TESSERA_PLANS=build/peft-plans python3 test/e2e/test_peft_parity.py --tessera build/bin/tessera-rt -v
