"""The operations of a registry, one module each, all working on a `adaptergit.registry.Registry`.

=================  ======================================================================
``init``           make a folder a registry (git, DVC, configuration, hooks, diff driver)
``commit``         record an adapter as a new version (one commit and one GTO tag)
``checkout``       bring a version's files back, in place or into a new folder
``transfer``       move weights between the DVC cache and a DVC remote
``sync``           push and pull versions: weights to the DVC remote, refs to the git remote
``remotes``        add, list, modify and remove DVC remotes
``stages``         assign and unassign GTO stages
``verify``         re-hash weights against their manifests
``status``         what is changed, unpushed or lost
``gc``             remove weights no kept version needs
``diff``           compare two versions
``diffdriver``     the git diff driver (``git diff`` / ``git log -p`` summaries)
``hooks``          the git hooks: installing them, and what each does when git runs it
``recover``        finish or undo what interrupted commands left (journals, partial uploads)
``replay``         replaying unpublished versions on what others published first (renumbering)
=================  ======================================================================

Operations import the core (`registry`, `index`, the git and DVC modules, the records) and may
import each other without circles; the core imports no operation. `adaptergit.repo.Repo` binds
them into the public API.
"""
