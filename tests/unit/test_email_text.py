"""Mail text helpers: charset decoding, HTML to text, reply and signature cutting."""

from __future__ import annotations

from connectors.email.text import decode, html_to_text, strip_reply, unflow


def test_decode_declared_undeclared_and_broken() -> None:
    assert decode("Grüße".encode(), "utf-8") == ("Grüße", False)
    assert decode("Grüße".encode("cp1252"), None) == ("Grüße", False)  # not UTF-8: windows-1252
    assert decode("Grüße".encode(), '"UTF-8"') == ("Grüße", False)
    text, replaced = decode(b"ok \xff", "utf-8")
    assert text == "ok \ufffd" and replaced
    assert decode("Привет".encode("koi8-r"), "koi8-r") == ("Привет", False)
    assert decode(b"plain", "no-such-charset") == ("plain", False)


def test_html_blocks_become_lines_and_hidden_content_goes() -> None:
    html = """<html><head><title>Title</title><style>.x{}</style></head><body>
      <script>var secret = 1;</script><noscript>enable js</noscript>
      <p>First   paragraph
      continues.</p><div>Second<br>line</div><ul><li>one</li><li>two</li></ul>
      <table><tr><td>a</td><td>b</td></tr></table>&amp; done&nbsp;now</body></html>"""
    assert html_to_text(html) == "First paragraph continues.\nSecond\nline\none\ntwo\nab\n& done now"


def test_html_quotes_dropped_on_request() -> None:
    html = ('<div>New text</div><div class="gmail_quote">On Mon X wrote:<blockquote>old</blockquote></div>'
            '<div id="divRplyFwdMsg">From: Support</div>')
    assert html_to_text(html, drop_quotes=True) == "New text"
    assert "old" in html_to_text(html)


def test_html_fragment_without_body() -> None:
    assert html_to_text("just <i>text</i>") == "just text"
    assert html_to_text("") == ""


def test_strip_reply_keeps_new_text_and_hyphen_lists() -> None:
    text = "Two problems:\n- the login fails\n- the app is slow\n\nOn Tue, 3 Mar 2026, Bob wrote:\n> old"
    assert strip_reply(text) == "Two problems:\n- the login fails\n- the app is slow"


def test_strip_reply_signature_variants() -> None:
    assert strip_reply("Thanks!\n--\nJane") == "Thanks!"
    assert strip_reply("Thanks!\n\nSent from my iPhone") == "Thanks!"
    assert strip_reply("> only a quote") == ""


def test_strip_reply_on_huge_text_is_bounded() -> None:
    big = ("word " * 20 + "\n") * 60_000  # ~6 MB
    out = strip_reply(big)
    assert 100_000 < len(out) <= 128 * 1024


def test_unflow() -> None:
    assert unflow("a \nb\n c\n-- \nsig") == "a b\nc\n-- \nsig"
    assert unflow("a \nb", delsp=True) == "ab"
