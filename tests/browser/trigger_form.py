"""What Airflow 3.3's trigger form shows of each run parameter, as a person reads it: its label, whether it is
marked required (the star), and the value in it. Read from the open Trigger dialog (``AirflowUI.open_trigger_form``)
by what the UI keeps stable: the field's id (``element_<param>``), its field group (ARIA role ``group``), the label's
``data-required`` and react-select's ids, never the styling library's class names.
"""

from __future__ import annotations

from dataclasses import dataclass

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.airflow_ui import TRIGGER_SUBMIT

# The innermost group around a param's field: its label and its input (a switch's by its hidden input's name).
FIELD_GROUP = "(//*[@role='group'][.//*[@id='element_{name}' or @name='element_{name}']])[last()]"
# react-select's placeholder (shown while nothing is chosen) has an id ending so.
PLACEHOLDER = (By.CSS_SELECTOR, "[id$='-placeholder']")


@dataclass(frozen=True)
class Field:
    label: str  # the label's text as shown, the star included
    required: bool  # the label is marked required (data-required): the form draws the star, keeps Trigger disabled while empty
    value: str  # a text field's text; a select's chosen option's label ("" when nothing is chosen, or its label is ""); on/off
    placeholder: str  # what an empty select shows instead of a value ("" for a text field, or a chosen option)


def field(driver: WebDriver, name: str) -> Field:
    """What the form on the page shows of the param ``name``."""
    group = driver.find_element(By.XPATH, FIELD_GROUP.format(name=name))
    label = group.find_element(By.TAG_NAME, "label")
    [element] = driver.find_elements(By.ID, f"element_{name}") or group.find_elements(By.NAME, f"element_{name}")
    if element.get_attribute("type") == "checkbox":  # a switch: on or off
        value, placeholder = "on" if element.is_selected() else "off", ""
    elif element.tag_name in ("input", "textarea"):
        value, placeholder = element.get_attribute("value") or "", ""
    else:
        shown = element.find_elements(*PLACEHOLDER)
        placeholder = shown[0].text.strip() if shown else ""
        value = "" if shown else element.text.strip()
    return Field(label=" ".join(label.text.split()), required=label.get_attribute("data-required") is not None,
                 value=value, placeholder=placeholder)


def trigger_enabled(driver: WebDriver) -> bool:
    """The dialog's Trigger button can be clicked."""
    return driver.find_element(*TRIGGER_SUBMIT).is_enabled()
