"""Every TwiML document in the suite is checked against Twilio's schema when it is available."""
from __future__ import annotations

import pytest
from lxml import etree

from tests.helpers import XSD_WHERE, TestCaller, require, twiml_schema, xsd_dir


def test_twiml_schema_is_available_for_the_suite() -> None:
    require(xsd_dir() is not None, f"{XSD_WHERE}, so every TwiML response is validated")
    assert twiml_schema() is not None


def test_schema_rejects_what_twilio_would_reject(caller: TestCaller) -> None:
    require(xsd_dir() is not None, f"{XSD_WHERE} to validate TwiML")
    caller.call()
    document = caller.twiml
    gather = document.find("Gather")
    gather.set("timeout", "ten seconds")  # not an integer: Twilio refuses the document
    with pytest.raises(etree.DocumentInvalid):
        twiml_schema().assertValid(document)
