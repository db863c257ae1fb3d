"""What the person reads (reminders, "Ça a marché ?") and the timeline's labels (data.label), in plain French."""

REMINDER = ("📅 Rappel : vous avez rendez-vous demain, {when}.\n"
            "📍 {place}\n"
            "🗺️ Le plan : {map}\n"
            "Si vous ne pouvez pas venir, répondez à ce message.")
REMINDER_SOON = ("📅 Rappel : vous avez rendez-vous {when}.\n"
                 "📍 {place}\n"
                 "🗺️ Le plan : {map}\n"
                 "Si vous ne pouvez pas venir, répondez à ce message.")
FOLLOWUP = ("👋 Bonjour, c'est {worker}{where}. Nous avons parlé de votre démarche il y a quelques jours.\n"
            "Ça a marché ?")
WHERE = ", de {structure}"
BUTTONS = (("yes", "✅ Oui"), ("not_yet", "⏳ Pas encore"), ("help", "🙋 J'ai besoin d'aide"))
THANKS = {
    "yes": "🎉 Merci, c'est une bonne nouvelle ! Écrivez « menu » si vous avez besoin d'autre chose.",
    "not_yet": "👍 Merci de nous le dire. Prenez votre temps. Si vous avez besoin d'aide, écrivez « humain ».",
}
ALREADY = "👍 Merci, votre réponse est déjà notée."

ANSWER_LABELS = {"yes": "✅ Oui, ça a marché", "not_yet": "⏳ Pas encore", "help": "🙋 J'ai besoin d'aide"}

# data.label of the events (the inbox shows unknown event types by their label).
APPOINTMENT_NOTED = "📅 Rendez-vous noté : {when}, {place}. {reminder}"
APPOINTMENT_CHANGED = "📅 Rendez-vous modifié : {when}, {place}. {reminder}"
APPOINTMENT_CANCELLED = "📅 Rendez-vous annulé ({when})"
REMINDER_PLANNED = "Rappel prévu {when}."
REMINDER_IMPOSSIBLE = "Pas de rappel : le rendez-vous est trop proche."
REMINDER_SENT = "🔔 Rappel du rendez-vous envoyé"
REMINDER_SKIPPED = "🔕 Rappel non envoyé : {why}"
FOLLOWUP_SCHEDULED = "🔁 Message « Ça a marché ? » prévu {when} (la personne est d'accord)"
FOLLOWUP_CANCELLED = "🔁 Message « Ça a marché ? » annulé"
FOLLOWUP_SENT = "🔁 Message « Ça a marché ? » envoyé"
FOLLOWUP_SKIPPED = "🔁 Message « Ça a marché ? » non envoyé : {why}"
FOLLOWUP_ANSWERED = "🔁 Réponse au suivi : {answer}"
FOLLOWUP_HELP_HERE = "🔁 Suite du suivi de la conversation n° {conversation} : la personne a besoin d'aide"
WHY_STOPPED = "la personne a écrit stop"
WHY_TOO_LATE = "le rendez-vous est trop proche"
