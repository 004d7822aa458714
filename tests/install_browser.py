"""Install Debian's Chromium for the browser test (tests/test_ui.py), if it is missing.

Part of the test setup: `python tests/install_browser.py` before pytest. Needs Debian's apt-get and
root (or sudo without a password); anywhere else it says why and the browser test is skipped.
"""

import os
import shutil
import subprocess
import sys


def main() -> int:
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return 0
    if not shutil.which("apt-get"):
        print("install_browser: no apt-get here; tests/test_ui.py's browser test will be skipped", file=sys.stderr)
        return 0
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(sudo + command, env=env).returncode != 0:
            print(f"install_browser: `{' '.join(command)}` failed; the browser test will be skipped", file=sys.stderr)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
