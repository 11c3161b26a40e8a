"""Calls gpt-load with each provider's official Python SDK, plain and streamed.

Run by tests/sdk_python.rs with GPT_LOAD_URL and GPT_LOAD_PROXY_KEY set; prints one line per check
and exits non-zero on the first failure.
"""
import os
import sys

base = os.environ["GPT_LOAD_URL"]
key = os.environ["GPT_LOAD_PROXY_KEY"]


def check(name, ok, detail):
    print(("PASS " if ok else "FAIL ") + name + ": " + detail, flush=True)
    if not ok:
        sys.exit(1)


def openai_sdk():
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/proxy/oa/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    check("openai plain", reply.choices[0].message.content == "Hello from mock", reply.choices[0].message.content)
    parts = []
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    text = "".join(parts)
    check("openai stream", text == "chunk-0 chunk-1 chunk-2 ", repr(text))


def anthropic_sdk():
    import anthropic

    client = anthropic.Anthropic(base_url=f"{base}/proxy/claude", api_key=key, max_retries=0)
    msg = client.messages.create(
        model="claude-3-haiku-20240307", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    check("anthropic plain", msg.content[0].text == "Hello from mock", msg.content[0].text)
    with client.messages.stream(
        model="claude-3-haiku-20240307", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check("anthropic stream", text == "chunk-0 chunk-1 chunk-2 ", repr(text))
    check("anthropic stream end", final.stop_reason == "end_turn", str(final.stop_reason))


def gemini_sdk():
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"{base}/proxy/gem"))
    reply = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    check("gemini plain", reply.text == "Hello from mock", repr(reply.text))
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
    check("gemini stream", text == "chunk-0 chunk-1 chunk-2 ", repr(text))


openai_sdk()
anthropic_sdk()
gemini_sdk()
print("ALL SDK CHECKS PASSED")
