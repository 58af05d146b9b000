"""`python -m plowline` runs the command-line interface (this is how `plowline up` starts its children)."""

from plowline.cli import main
from plowline.supervisor import die_with_supervisor

die_with_supervisor()
main()
