"""The pure protocol layer: formats and rules with no files, sockets or threads of their own.

| PROTOCOL.md section | module |
|---|---|
| 5. Trust updates (v2) | trustupdate (format), trustfold (rules), trust (the store) |

(The other sections still live at the package's top level; the structure issue moves them here.)
"""
