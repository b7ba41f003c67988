"""A real MCP client built with the official Python SDK (`mcp`, pinned in
interop/requirements.txt), acting for a person: the SDK's own OAuth client
(`OAuthClientProvider`) with a redirect handler that follows the
authorization URL headlessly (httpx without redirects and with a cookie jar:
sign-in form, consent form). Driven by
crates/gatehouse/tests/it/client_documents.rs:

    python3 interop/mcp_python_oauth_client.py MCP_URL USERNAME PASSWORD [CLIENT_METADATA_URL]

With CLIENT_METADATA_URL the provider gets it as `client_metadata_url`: the
SDK then uses it as its client id when the server advertises
`client_id_metadata_document_supported`, and registers otherwise. It
connects with no token, so the SDK starts from the gateway's 401, and calls
the tool `search_issues`.

Prints one JSON line on stdout:
    {"client_id": ..., "authorization": {...query of the authorization URL...},
     "result": "...text of the tool result...", "requests": ["METHOD PATH -> STATUS", ...]}
Exits non-zero with details on stderr on any failure.
"""

import asyncio
import html
import json
import random
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


def fail(message):
    print(f"mcp_python_oauth_client.py: {message}", file=sys.stderr)
    sys.exit(1)


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def hidden_fields(page, path):
    """The hidden fields and the action of the form on `page` posting to `path`."""
    for form in re.finditer(r"<form\b([^>]*)>(.*?)</form>", page, re.S | re.I):
        action = re.search(r'action="([^"]*)"', form.group(1))
        if not action or urlparse(html.unescape(action.group(1))).path != path:
            continue
        fields = {}
        for tag in re.finditer(r"<input\b([^>]*)>", form.group(2), re.I):
            attrs = dict(
                (k.lower(), html.unescape(v))
                for k, v in re.findall(r'([a-zA-Z_:][-a-zA-Z0-9_:.]*)="([^"]*)"', tag.group(1))
            )
            if attrs.get("type", "").lower() == "hidden" and "name" in attrs:
                fields[attrs["name"]] = attrs.get("value", "")
        return html.unescape(action.group(1)), fields
    fail(f"no form posting to {path} on the page:\n{page}")


async def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mcp_url, username, password = sys.argv[1:4]
    metadata_url = sys.argv[4] if len(sys.argv) > 4 else None
    redirect_uri = f"http://127.0.0.1:{random.randint(20000, 60000)}/callback"
    requests = []
    seen = {}

    async def log_response(response):
        requests.append(f"{response.request.method} {response.request.url.path} -> {response.status_code}")

    async def redirect_handler(url):
        seen["authorization"] = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        async with httpx.AsyncClient(follow_redirects=False, event_hooks={"response": [log_response]}) as agent:
            page = await agent.get(url)
            if page.status_code != 200:
                fail(f"authorization URL answered {page.status_code}: {page.text}")
            action, fields = hidden_fields(page.text, "/oauth/signin")
            signin = await agent.post(
                urljoin(url, action), data={**fields, "username": username, "password": password}
            )
            if signin.status_code != 303:
                fail(f"sign-in answered {signin.status_code}: {signin.text}")
            back = urljoin(url, signin.headers["location"])
            consent = await agent.get(back)
            if consent.status_code != 200:
                fail(f"consent page answered {consent.status_code}: {consent.text}")
            action, fields = hidden_fields(consent.text, "/oauth/consent")
            answer = await agent.post(urljoin(back, action), data={**fields, "decision": "allow"})
            if answer.status_code != 303:
                fail(f"consent answered {answer.status_code}: {answer.text}")
            query = parse_qs(urlparse(answer.headers["location"]).query)
            if "code" not in query:
                fail(f"no code in {answer.headers['location']}")
            seen["code"] = query["code"][0]
            seen["state"] = query.get("state", [None])[0]

    async def callback_handler():
        return seen["code"], seen["state"]

    storage = Memory()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="Gatehouse interop Python MCP client",
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=metadata_url,
    )

    def client_factory(headers=None, timeout=None, auth=None):
        return httpx.AsyncClient(
            headers=headers,
            timeout=timeout or httpx.Timeout(30.0),
            auth=auth,
            follow_redirects=True,
            event_hooks={"response": [log_response]},
        )

    async with streamablehttp_client(mcp_url, auth=provider, httpx_client_factory=client_factory) as (
        read,
        write,
        _,
    ):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("search_issues", {})
            if result.isError:
                fail(f"search_issues returned a tool error: {result}")
            text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
    print(
        json.dumps(
            {
                "client_id": storage.client.client_id if storage.client else None,
                "authorization": seen.get("authorization"),
                "result": text,
                "requests": requests,
            }
        )
    )


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report whatever broke
        import traceback

        traceback.print_exc()
        fail(f"{type(e).__name__}: {e}")
