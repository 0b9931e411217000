"""PromQL front end: lark grammar, parser to a typed AST, type checker and printer."""
