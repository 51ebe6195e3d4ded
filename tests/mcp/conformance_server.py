"""The "everything server" the MCP conformance suite expects, as a stdio server on the official SDK's low-level API.

The suite (``@modelcontextprotocol/conformance``) calls fixed names -- ``test_simple_text``, ``test://static-text``,
``test_prompt_with_arguments`` ... (its SERVER_REQUIREMENTS.md). The tests put this server behind the gateway in
pass-through mode and run the suite against the gateway, so every scenario goes through the gateway's aggregation,
forwarding, progress, logging and sampling/elicitation relays.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA="
EMPTY: dict[str, Any] = {"type": "object", "properties": {}}
RECONNECTION_S = 1.0  # how long test_reconnection runs

# fmt: off
TOOLS: list[dict[str, Any]] = [
    {"name": "test_simple_text", "description": "Returns simple text", "inputSchema": EMPTY},
    {"name": "test_image_content", "description": "Returns an image", "inputSchema": EMPTY},
    {"name": "test_audio_content", "description": "Returns audio", "inputSchema": EMPTY},
    {"name": "test_embedded_resource", "description": "Returns an embedded resource", "inputSchema": EMPTY},
    {"name": "test_multiple_content_types", "description": "Returns mixed content", "inputSchema": EMPTY},
    {"name": "test_tool_with_logging", "description": "Logs while it runs", "inputSchema": EMPTY},
    {"name": "test_tool_with_progress", "description": "Reports progress", "inputSchema": EMPTY},
    {"name": "test_error_handling", "description": "Always fails", "inputSchema": EMPTY},
    {"name": "test_sampling", "description": "Asks the client's LLM", "inputSchema": {
        "type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}},
    {"name": "test_elicitation", "description": "Asks the user", "inputSchema": {
        "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
    {"name": "test_elicitation_sep1034_defaults", "description": "Elicitation with defaults", "inputSchema": EMPTY},
    {"name": "test_elicitation_sep1330_enums", "description": "Elicitation with enums", "inputSchema": EMPTY},
    {"name": "test_reconnection", "description": "Runs long enough for the gateway to close its SSE stream",
     "inputSchema": EMPTY},
    {"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features", "inputSchema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"},
                                                                "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False}},
]

RESOURCES: dict[str, dict[str, Any]] = {
    "test://static-text": {"name": "Static Text Resource", "description": "A static text resource for testing",
                           "mimeType": "text/plain", "text": "This is the content of the static text resource."},
    "test://static-binary": {"name": "Static Binary Resource", "description": "A static binary resource (image)",
                             "mimeType": "image/png", "blob": PNG},
    "test://watched-resource": {"name": "Watched Resource", "description": "A resource that can be subscribed to",
                                "mimeType": "text/plain", "text": "Watched resource content"},
}

PROMPTS: list[dict[str, Any]] = [
    {"name": "test_simple_prompt", "description": "A simple prompt"},
    {"name": "test_prompt_with_arguments", "description": "A prompt with required arguments", "arguments": [
        {"name": "arg1", "description": "First test argument", "required": True},
        {"name": "arg2", "description": "Second test argument", "required": True}]},
    {"name": "test_prompt_with_embedded_resource", "description": "A prompt with an embedded resource",
     "arguments": [{"name": "resourceUri", "description": "URI to embed", "required": True}]},
    {"name": "test_prompt_with_image", "description": "A prompt with an image"},
]
# fmt: on


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}]}


async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
    return {"tools": TOOLS}


async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
    name, args = params.name, params.arguments or {}
    session = ctx.session
    if name == "test_simple_text":
        return text("This is a simple text response for testing.")
    if name == "test_image_content":
        return {"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]}
    if name == "test_audio_content":
        return {"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]}
    if name == "test_embedded_resource":
        return {"content": [{"type": "resource", "resource": {"uri": "test://embedded-resource",
                "mimeType": "text/plain", "text": "This is an embedded resource content."}}]}  # fmt: skip
    if name == "test_multiple_content_types":
        return {"content": [
            {"type": "text", "text": "Multiple content types test:"},
            {"type": "image", "data": PNG, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                                              "text": json.dumps({"test": "data", "value": 123})}},
        ]}  # fmt: skip
    if name == "test_tool_with_logging":
        for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await anyio.sleep(0.05)
            await session.send_log_message(
                "info", message, "conformance-test-server", related_request_id=ctx.request_id
            )
        return text("Tool with logging executed successfully")
    if name == "test_tool_with_progress":
        for i, value in enumerate((0, 50, 100)):
            if i:
                await anyio.sleep(0.05)
            await session.report_progress(value, 100)
        return text("Tool with progress executed successfully")
    if name == "test_reconnection":
        # SEP-1699 polling: the gateway (run with --sse-poll-ms well below this) closes the call's SSE stream
        # mid-call; the suite reconnects with Last-Event-ID and must get this result from the event store
        await anyio.sleep(RECONNECTION_S)
        return text("Reconnection test completed")
    if name == "test_error_handling":
        return {**text("This tool intentionally returns an error for testing"), "isError": True}
    if name == "test_sampling":
        sampled = await session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=str(args.get("prompt"))))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = sampled.content
        reply = content.text if isinstance(content, types.TextContent) else json.dumps(sampled.model_dump(mode="json"))
        return text(f"LLM response: {reply}")
    if name in ("test_elicitation", "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums"):
        message, schema = _elicitation(name, args)
        answer = await session.elicit_form(message, schema, related_request_id=ctx.request_id)
        given = json.dumps(answer.content)
        if name == "test_elicitation":
            return text(f"User response: action={answer.action}, content={given}")
        return text(f"Elicitation completed: action={answer.action}, content={given}")
    return {**text(f"Unknown tool: {name}"), "isError": True}


# fmt: off
def _elicitation(name: str, args: dict[str, Any]) -> tuple[str, Any]:
    if name == "test_elicitation":
        return str(args.get("message")), {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
    if name == "test_elicitation_sep1034_defaults":
        return "Please review these defaults", {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "default": True},
            },
        }
    return "Choose options", {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
    }


async def list_resources(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
    return {"resources": [{"uri": uri, **{k: v for k, v in r.items() if k not in ("text", "blob")}}
                          for uri, r in RESOURCES.items()]}  # fmt: skip


async def list_templates(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
    return {"resourceTemplates": [{"uriTemplate": "test://template/{id}/data", "name": "Resource Template",
                                   "description": "A resource template with parameter substitution",
                                   "mimeType": "application/json"}]}  # fmt: skip


async def read_resource(ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams) -> Any:
    uri = str(params.uri)
    if uri in RESOURCES:
        r = RESOURCES[uri]
        body = {"text": r["text"]} if "text" in r else {"blob": r["blob"]}
        return {"contents": [{"uri": uri, "mimeType": r["mimeType"], **body}]}
    if uri.startswith("test://template/") and uri.endswith("/data"):
        item = uri.removeprefix("test://template/").removesuffix("/data")
        data = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": json.dumps(data)}]}
    raise MCPError(code=types.INVALID_PARAMS, message=f"Resource not found: {uri}")


async def empty(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
    return {}


async def list_prompts(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
    return {"prompts": PROMPTS}


# fmt: off
async def get_prompt(ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams) -> Any:
    args = params.arguments or {}
    user = "user"
    if params.name == "test_simple_prompt":
        return {
            "messages": [{"role": user, "content": {"type": "text", "text": "This is a simple prompt for testing."}}]
        }
    if params.name == "test_prompt_with_arguments":
        said = f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"
        return {"messages": [{"role": user, "content": {"type": "text", "text": said}}]}
    if params.name == "test_prompt_with_embedded_resource":
        return {
            "messages": [
                {
                    "role": user,
                    "content": {
                        "type": "resource",
                        "resource": {
                            "uri": args.get("resourceUri"),
                            "mimeType": "text/plain",
                            "text": "Embedded resource content for testing.",
                        },
                    },
                },
                {"role": user, "content": {"type": "text", "text": "Please process the embedded resource above."}},
            ]
        }
    if params.name == "test_prompt_with_image":
        return {
            "messages": [
                {"role": user, "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
                {"role": user, "content": {"type": "text", "text": "Please analyze the image above."}},
            ]
        }
    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
# fmt: on


async def complete(ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams) -> Any:
    return {"completion": {"values": ["paris", "park", "party"], "total": 3, "hasMore": False}}


server: Server[Any] = Server(
    "mcp-conformance-test-server",
    version="1.0.0",
    on_list_tools=list_tools,
    on_call_tool=call_tool,
    on_list_resources=list_resources,
    on_list_resource_templates=list_templates,
    on_read_resource=read_resource,
    on_subscribe_resource=empty,
    on_unsubscribe_resource=empty,
    on_list_prompts=list_prompts,
    on_get_prompt=get_prompt,
    on_completion=complete,
)
server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, empty)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NotificationOptions(True, True, True)))


if __name__ == "__main__":
    anyio.run(main)
