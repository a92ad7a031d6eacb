"""Message Markdown to safe HTML."""

from __future__ import annotations

import re

import pytest

from subgraphs.messages.markdown import to_html


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("**bold** _it_ ~~gone~~", "<p><strong>bold</strong> <em>it</em> <s>gone</s></p>"),
        ("a ||secret **x**|| b", '<p>a <span class="spoiler">secret <strong>x</strong></span> b</p>'),
        ("odd || one", "<p>odd || one</p>"),
        ("```py\nprint(1 < 2)\n```", '<pre><code class="language-py">print(1 &lt; 2)\n</code></pre>'),
        ("`<b>`", "<p><code>&lt;b&gt;</code></p>"),
        ("line one\nline two", "<p>line one<br />\nline two</p>"),
        (
            "[site](https://example.com)",
            '<p><a href="https://example.com" rel="noopener noreferrer nofollow">site</a></p>',
        ),
    ],
)
def test_commonmark_with_strikethrough_spoilers_and_code(text: str, html: str) -> None:
    assert to_html(text) == html


ALLOWED_TAGS = {"p", "a", "strong", "em", "s", "code", "pre", "span", "br", "ul", "ol", "li", "blockquote"}


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
    ],
)
def test_no_raw_html_and_no_script_links(text: str) -> None:
    html = to_html(text)
    assert set(re.findall(r"</?([a-zA-Z0-9]+)", html)) <= ALLOWED_TAGS, html
    assert all(
        href.startswith(("http:", "https:", "mailto:")) for href in re.findall(r'href="([^"]*)"', html)
    )


def test_images_become_links() -> None:
    assert to_html("![cat](https://example.com/cat.png)") == (
        '<p><a href="https://example.com/cat.png" rel="noopener noreferrer nofollow">cat</a></p>'
    )


def test_mentions_show_current_labels_escaped() -> None:
    labels = {("user", 42): "@ada<3", ("channel", 7): "#general"}
    html = to_html("hi <@42> see <#7> and <@99>", lambda kind, id_: labels.get((kind, id_)))
    assert html == (
        '<p>hi <span class="mention" data-user-id="42">@ada&lt;3</span> see '
        '<span class="mention" data-channel-id="7">#general</span> and '
        '<span class="mention" data-user-id="99">@unknown-user</span></p>'
    )
