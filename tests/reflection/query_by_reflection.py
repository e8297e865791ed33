"""A gRPC client that knows nothing of civex but its address and certificates.

It learns the gateway's services and messages through server reflection
v1alpha only (what Python's grpcio-reflection speaks), makes an
ExchangeService.Query built from those descriptors, and reads the
refusal's google.rpc.ErrorInfo with the descriptor reflection served.
Run by tests/it/reflection.rs; prints one JSON object.

Environment: CIVEX_TARGET (host:port), CIVEX_CA, CIVEX_CERT, CIVEX_KEY
(PEM files), CIVEX_CITIZEN (an ID number without a consent).
"""

import json
import os

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def read(name):
    with open(os.environ[name], "rb") as f:
        return f.read()


def main():
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("CIVEX_CA"),
        private_key=read("CIVEX_KEY"),
        certificate_chain=read("CIVEX_CERT"),
    )
    channel = grpc.secure_channel(
        os.environ["CIVEX_TARGET"],
        credentials,
        options=[("grpc.ssl_target_name_override", "localhost"), ("grpc.enable_http_proxy", 0)],
    )
    reflection = ProtoReflectionDescriptorDatabase(channel)
    # A pool of reflection's descriptors alone: nothing compiled in is used.
    pool = descriptor_pool.DescriptorPool(reflection)
    services = sorted(reflection.get_services())

    def message(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    query = pool.FindServiceByName("civex.v1.ExchangeService").FindMethodByName("Query")
    request_class = message(query.input_type.full_name)
    response_class = message(query.output_type.full_name)
    call = channel.unary_unary(
        "/civex.v1.ExchangeService/Query",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    request = request_class(
        citizen_id=os.environ["CIVEX_CITIZEN"],
        attributes=["ps.hukou.division"],
        purpose="hukou.settlement",
        operator="py-reflection",
        request_id="py-reflection-1",
    )
    result = {"services": services}
    try:
        call(request, timeout=10)
        result["code"] = "OK"
    except grpc.RpcError as refused:
        result["code"] = refused.code().name
        result["message"] = refused.details()
        trailers = dict(refused.trailing_metadata() or ())
        status = message("google.rpc.Status").FromString(trailers["grpc-status-details-bin"])
        for detail in status.details:
            type_name = detail.type_url.split("/")[-1]
            unpacked = message(type_name).FromString(detail.value)
            if type_name == "google.rpc.ErrorInfo":
                result["error_info"] = {"reason": unpacked.reason, "domain": unpacked.domain}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
