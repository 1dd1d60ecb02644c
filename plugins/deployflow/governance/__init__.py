"""Release governance: freeze windows, promotion between environments, and who hears of a release."""
