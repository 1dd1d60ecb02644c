"""Release governance: freeze windows, promotion between environments, who hears of a release, and who may
answer an approval gate."""
