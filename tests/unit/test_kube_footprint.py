"""The operator's Kubernetes client never loads the official client's generated API classes or
models: kubernetes 37 builds them as pydantic models, over 20 MiB for CoreV1Api alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    def generated():
        return {
            name for name in sys.modules
            if name.startswith(("kubernetes.client.api.", "kubernetes.client.models."))
        }

    import kopf  # kopf itself loads V1ObjectMeta and the like (its helpers for adopt())
    from kubernetes import client
    kopfs = generated()
    import renku_env_operator.runner
    from renku_env_operator.clients.claims import ClaimsClient
    from renku_env_operator.clients.globalenvironments import GlobalEnvironmentStatusWriter
    from renku_env_operator.clients.kube import KubeClient

    import http.server, json, threading

    class Answer(http.server.BaseHTTPRequestHandler):
        # Every request succeeds, so the answers' path runs too (lists, objects, a log).
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"items": [], "metadata": {"resourceVersion": "1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def main():
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_port}"
        kube = KubeClient(client.ApiClient(configuration), request_timeout=5)
        claims = ClaimsClient(kube, "renku")
        calls = [
            kube.create_pod("ns", {"metadata": {"name": "p"}}),
            kube.get_pod("ns", "p"),
            kube.list_pods("ns", "a=b"),
            kube.delete_pod("ns", "p"),
            kube.stop_pod("ns", "p"),
            kube.read_pod_log("ns", "p"),
            kube.list_events_for("ns", "p"),
            kube.get_secret_data("ns", "s"),
            kube.list_node_architectures(),
            kube.list_one_custom_object("renku.io", "v1", "x", None, request_timeout=5),
            kube.may("watch", "renku.io", "x", None),
            claims.get("env-x"),
            claims.list("a=b"),
            claims.delete("env-x", "1"),
            GlobalEnvironmentStatusWriter(kube).patch_status("ns", "n", {}),
        ]
        for call in calls:
            await call  # every one answered: a failure here is a failure of the test
        await kube.close()

    asyncio.run(main())
    print(sorted(generated() - kopfs))
    """
)


def test_no_generated_api_class_or_model_is_loaded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
