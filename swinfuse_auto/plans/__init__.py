"""The plan: every data-dependent decision, as versioned, validated, human-editable JSON."""
