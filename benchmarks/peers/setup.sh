#!/usr/bin/env bash
# Make the peers' venv and clones, outside this repository. Not run by CI.
#
#   setup.sh [PEERS_DIR]        (default /work/peers)
#
# PEERS_DIR/venv     Python venv for the peers' code: torch 2.13.0 (the CPU wheel on this machine's
#                    disk; on a GPU machine install the CUDA build of the same version instead),
#                    numpy<1.24 (BaS-Net's evaluator uses np.float, removed in numpy 1.24), pandas<2
#                    and scipy<1.12 (built for numpy 1.x), joblib, tqdm, tensorboard_logger (both
#                    peers log with it; its 2018 protobuf code runs with
#                    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python, which the scripts set).
#                    No torchvision: neither peer imports it.
# PEERS_DIR/basnet   clone of github.com/Pilhyeon/BaSNet-pytorch at the tested commit
# PEERS_DIR/wtalc    clone of github.com/sujoyp/wtalc-pytorch at the tested commit
#
# The clones come from any git URL or mirror given in BASNET_URL / WTALC_URL (default: GitHub).
set -euo pipefail
P=${1:-/work/peers}
mkdir -p "$P"
if [ ! -x "$P/venv/bin/python" ]; then
  python3 -m venv "$P/venv"
fi
"$P/venv/bin/pip" install -q torch==2.13.0 'numpy<1.24' 'pandas<2' 'scipy<1.12' joblib tqdm tensorboard_logger==0.1.0
clone() {  # URL DIR COMMIT
  [ -d "$2/.git" ] || git clone -q "$1" "$2"
  git -C "$2" checkout -q "$3"
  echo "$2 at $(git -C "$2" rev-parse HEAD)"
}
clone "${BASNET_URL:-https://github.com/Pilhyeon/BaSNet-pytorch}" "$P/basnet" c8c6bbd84a33d14fa7e6d7bbfdbd0d6db286d9b6
clone "${WTALC_URL:-https://github.com/sujoyp/wtalc-pytorch}" "$P/wtalc" 81ea98264a8456881eb7e98df4872b66d307c6cb
