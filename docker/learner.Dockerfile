# The GPU learner: Python 3.11 venv made by `make venv` with a CUDA build of torch, plus the sim and
# cloud extras. No ROS: the learner meets the robots only through the store and the checkpoint folder.
# Build from the repository root:
#   docker build -f docker/learner.Dockerfile -t robot-rl/learner .
#   docker build -f docker/learner.Dockerfile --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cuXXX" .
FROM nvidia/cuda:12.8.1-base-ubuntu24.04

ARG PYTHON_VERSION=3.11
# On Linux the torch wheel on PyPI is the CUDA build (its CUDA libraries come as pip packages).
ARG TORCH_SPEC="torch==2.13.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUJOCO_GL=egl \
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    ROS_DOMAIN_ID=42

RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update && apt-get install -y --no-install-recommends \
        make git python${PYTHON_VERSION} python${PYTHON_VERSION}-venv \
        libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .

# The same steps as on a developer machine, then the extras the learner uses.
RUN make venv PYTHON=python${PYTHON_VERSION} VENV=/opt/venv TORCH_SPEC="${TORCH_SPEC}" \
    && /opt/venv/bin/pip install -e ".[sim,cloud]"

ENV PATH=/opt/venv/bin:$PATH
CMD ["robot-rl", "--help"]
