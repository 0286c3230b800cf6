//! Template rendering with the semantics of Python's `string.Template.safe_substitute`.
