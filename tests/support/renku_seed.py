"""What a fresh Renku install holds: six global environments, made in the admin panel, whose
images have no tag (they follow `latest`). Modelled on Renku's own defaults; used to test
`renku-env-operator export` and adoption of what an admin already has."""

from __future__ import annotations

from typing import Any

from tests.support.renku_double import RenkuDouble

REPO = "ghcr.io/swissdatasciencecenter/renku"
JOVYAN = {"uid": 1000, "gid": 100, "working_directory": "/home/jovyan/work"}
JOVYAN |= {"mount_directory": "/home/jovyan/work"}
RENKU = {"uid": 1000, "gid": 1000, "working_directory": "/home/renku/work"}
RENKU |= {"mount_directory": "/home/renku/work"}

FRESH_RENKU: list[dict[str, Any]] = [
    {
        "name": "Python/Jupyter",
        "description": "Standard Python environment with JupyterLab",
        "container_image": f"{REPO}/py-basic-jupyterlab",
        "default_url": "/lab",
        "port": 8888,
        **JOVYAN,
    },
    {
        "name": "Python/Jupyter (data science)",
        "description": "Python with pandas, scikit-learn and matplotlib, in JupyterLab",
        "container_image": f"{REPO}/py-datascience-jupyterlab",
        "default_url": "/lab",
        "port": 8888,
        **JOVYAN,
    },
    {
        "name": "Python/VSCodium",
        "description": "Python environment with the VSCodium editor",
        "container_image": f"{REPO}/py-basic-vscodium",
        "default_url": "/",
        "port": 8000,
        "args": ["--host", "0.0.0.0", "--port", "8000", "--without-connection-token"],
        **RENKU,
    },
    {
        "name": "R/RStudio",
        "description": "R environment with RStudio Server",
        "container_image": f"{REPO}/r-basic-rstudio",
        "default_url": "/",
        "port": 8787,
        "strip_path_prefix": True,
        **RENKU,
    },
    {
        "name": "Julia/Jupyter",
        "container_image": f"{REPO}/julia-basic-jupyterlab",
        "default_url": "/lab",
        "port": 8888,
        **JOVYAN,
    },
    {
        "name": "Minimal shell",
        "description": "A terminal in the browser (ttyd)",
        "container_image": f"{REPO}/minimal-ttyd:latest",
        "default_url": "/",
        "port": 7681,
        "command": ["ttyd"],
        "args": ["--writable", "bash"],
        **RENKU,
    },
]


def seed_fresh_renku(renku: RenkuDouble) -> list[dict[str, Any]]:
    """Create the six environments of a fresh install; return them as the API renders them."""
    return [renku.admin_create(**fields) for fields in FRESH_RENKU]
