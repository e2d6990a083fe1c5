# Sourced by the scripts: creates .venv from requirements.txt when it is missing or out of date, then activates it.
# The scripts run in the repository; a relative CKPT, DATA_ROOT, OUT_ROOT, CACHE_DIR or IMAGENET900_ROOT names a path
# under the folder the script was called from, so each is made absolute here, before the cd.
set -euo pipefail
for path_variable in CKPT DATA_ROOT OUT_ROOT CACHE_DIR IMAGENET900_ROOT; do
  if [ -n "${!path_variable:-}" ] && [[ "${!path_variable}" != /* ]]; then
    export "$path_variable=$PWD/${!path_variable}"
  fi
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1
stamp=.venv/requirements.sha256
wanted=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setting up .venv from requirements.txt (a few minutes the first time)" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$wanted" > "$stamp"
fi
source .venv/bin/activate
