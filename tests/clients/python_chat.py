"""A Python client of agentd, generated from proto/ with grpcio-tools at run time.

Usage: python_chat.py PROTO_DIR ADDRESS MESSAGE

Streams AgentService.Chat and prints one JSON object per event, then calls
AgentService.Ask with the same message in the session the chat created and
GetSession on it, printing each reply as JSON. Exits 2 with the gRPC status on
stderr if a call fails.
"""

import importlib.resources
import json
import sys
import tempfile

import grpc
from google.protobuf import json_format
from grpc_tools import protoc


def generate(proto_dir: str, out_dir: str) -> None:
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    status = protoc.main(
        [
            "protoc",
            f"-I{proto_dir}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            "agentd/v1/agent.proto",
        ]
    )
    if status != 0:
        sys.exit(f"protoc failed with {status}")


def main() -> None:
    proto_dir, address, message = sys.argv[1:4]
    out_dir = tempfile.mkdtemp(prefix="agentd-python-client-")
    generate(proto_dir, out_dir)
    sys.path.insert(0, out_dir)
    from agentd.v1 import agent_pb2, agent_pb2_grpc  # noqa: E402  (generated above)

    def show(reply) -> None:
        print(json.dumps(json_format.MessageToDict(reply)), flush=True)

    with grpc.insecure_channel(address) as channel:
        agent = agent_pb2_grpc.AgentServiceStub(channel)
        try:
            session_id = ""
            for event in agent.Chat(agent_pb2.ChatRequest(message=message), timeout=30):
                show(event)
                if event.HasField("completed"):
                    session_id = event.completed.session_id
            show(agent.Ask(agent_pb2.AskRequest(message=message, session_id=session_id), timeout=30))
            show(agent.GetSession(agent_pb2.GetSessionRequest(session_id=session_id), timeout=30))
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
