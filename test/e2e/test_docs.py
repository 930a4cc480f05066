"""The commands the README and docs/*.md show use flags the CLI has.

Every `tessera SUBCOMMAND ...` line in their shell blocks (continuation lines
joined, `$T` standing for tessera as in README's walk-through) is checked
against `tessera SUBCOMMAND --help`: each --flag it shows must be one the
subcommand lists, so a renamed or removed flag cannot stay documented. (The
walk-through itself runs as scripts/run_default.sh, the README's first
command.)
"""
import glob
import os
import re

import common
from common import ROOT, tessera

FENCE = re.compile(r"^```(\w*)\s*$")
COMMAND = re.compile(r"(?:^|[|;&]\s*|\s)(?:tessera|\$T|build/bin/tessera)\s+([a-z][a-z-]*)(.*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def shell_lines(path):
    """The lines of a file's fenced code blocks, continuation lines joined."""
    out, block, pending = [], False, ""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if FENCE.match(line.strip()):
                block = not block
                continue
            if not block:
                continue
            line = line.rstrip("\n")
            if line.startswith("  ") and line.lstrip().startswith("[") and out and not pending:
                out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())  # a usage line's wrapped options
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append((n, pending + line))
            pending = ""
    return out


class DocsTest(common.unittest.TestCase):
    def test_documented_flags_exist(self):
        helps, checked = {}, 0
        docs = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
        for path in docs:
            for n, line in shell_lines(path):
                code = line.split(" #", 1)[0]
                m = COMMAND.search(code)
                if not m:
                    continue
                sub, rest = m.group(1), m.group(2).split("|", 1)[0]
                if sub not in helps:
                    r = tessera(sub, "--help", check=False)
                    helps[sub] = r.stdout if r.rc == 0 else None
                where = f"{os.path.relpath(path, ROOT)}:{n}"
                self.assertIsNotNone(helps[sub], f"{where}: `tessera {sub}` is not a subcommand")
                for flag in FLAG.findall(rest):
                    self.assertRegex(helps[sub], rf"(?<![\w-]){re.escape(flag)}(?![\w-])",
                                     f"{where}: tessera {sub} has no {flag}")
                    checked += 1
        self.assertGreater(checked, 80)


if __name__ == "__main__":
    common.main()
