"""A /v1 request's JSON body, read within a size and validated into its model; what is wrong with
it comes back in OpenAI's error shape, naming the field at fault."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shared_schemas import ErrorCode

from .errors import OpenAIError, invalid

Model = TypeVar("Model", bound=BaseModel)


async def json_body(request: Request, model: type[Model], limit: int, wanted: str) -> Model:
    """The body as `model`; `wanted` says its shape in the message (`{"model", "input", ...}`)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OpenAIError(413, f"The body is over {limit // 1024} KiB.", code=ErrorCode.TOO_LARGE)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        field = ".".join(map(str, exc.errors()[0]["loc"])) or None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise invalid(f"Send JSON {wanted}: {problems}.", field) from None
