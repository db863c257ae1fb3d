"""What the person is told when a human takes over (plain French, the flows' tone: an emoji, short
lines, who and when). Kept here, in one place, so that wording changes never touch the routing."""

# The message reached a named person.
REACHED = "📨 Votre message est bien arrivé."
INTRODUCTION = "🙋 {first_name}, {job_title}{where}, va s'occuper de votre demande."
# The person's previous worker answers again.
CONTINUITY = "🙋 {first_name} vous répond, comme la dernière fois ({job_title}{where})."
WHERE = " à {structure}"
SOON = "⏱️ Réponse ici, en général en quelques minutes."
LATER = "⏱️ Réponse ici, {hours}."

# Nobody free yet, inside the hours.
QUEUED = ("📨 Votre message est bien arrivé à {who}.\n"
          "🙋 Personne n'est disponible tout de suite : une personne vous répondra ici, {hours}, "
          "et vous dira son prénom.")
TEAM = "l'équipe {name}"
ORGANISATION = "l'équipe de {name}"

# Outside the hours: passed on, when to expect an answer, emergency numbers for urgent needs.
PASSED_ON = "📨 Votre message est bien transmis à {who}."
CLOSED_NOW = "🌙 L'équipe est fermée en ce moment."
EXPECTED = "⏱️ Une personne vous répondra ici dès {when}, et vous dira son prénom."
EXPECTED_UNKNOWN = "⏱️ Une personne vous répondra ici dès la réouverture, et vous dira son prénom."
URGENT = "🆘 En cas d'urgence, sans attendre :\n{numbers}"
NUMBER = "📞 {text}"

# A worker leaves (deactivated): someone else will answer.
REQUEUED = ("🙋 {name} n'est plus disponible. Je transmets votre demande à {who}.\n"
            "Une personne vous répondra ici, {hours}, et vous dira son prénom.")
SOMEONE = "La personne qui vous répondait"
