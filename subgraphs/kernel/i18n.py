"""Error messages in the caller's language: English (the source) and French.

Services keep raising English messages; `translate` maps them at the edge, so no call site changes.
Templates name their variable parts `{x}`: the English text is matched as a pattern and the captured
parts are put into the French text. The caller's language is the user's setting (the token's `locale`
claim) or else the request's Accept-Language; codes never change with the language.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from functools import cache

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
_language: ContextVar[str] = ContextVar("beep_language", default=DEFAULT_LANGUAGE)

FRENCH: dict[str, str] = {
    # kernel and users
    "Sign in to do this.": "Connectez-vous pour faire cela.",
    "Invalid or expired access token.": "Jeton d'accès invalide ou expiré.",
    "{x} is required.": "{x} est obligatoire.",
    "{x} must be at least {n} characters.": "{x} doit contenir au moins {n} caractères.",
    "{x} must be at most {n} characters.": "{x} doit contenir au plus {n} caractères.",
    "{x} contains control characters.": "{x} contient des caractères de contrôle.",
    "'{x}' is not a valid ID.": "« {x} » n'est pas un identifiant valide.",
    "'{x}' is not a valid cursor.": "« {x} » n'est pas un curseur valide.",
    "'first' must be between 1 and {n}.": "« first » doit être compris entre 1 et {n}.",
    "Enter a valid e-mail address.": "Saisissez une adresse e-mail valide.",
    "That username is taken.": "Ce nom d'utilisateur est déjà pris.",
    "An account with that e-mail already exists.": "Un compte existe déjà avec cette adresse e-mail.",
    "That username or e-mail was just taken.": "Ce nom d'utilisateur ou cette adresse vient d'être pris.",
    "Choose a less guessable password.": "Choisissez un mot de passe moins facile à deviner.",
    "Password must be at least 8 characters.": "Le mot de passe doit contenir au moins 8 caractères.",
    "Password must be at most 128 characters.": "Le mot de passe doit contenir au plus 128 caractères.",
    "Username must be at least 2 characters.": "Le nom d'utilisateur doit contenir au moins 2 caractères.",
    "Username must be at most 32 characters.": "Le nom d'utilisateur doit contenir au plus 32 caractères.",
    "Username may contain letters, digits, '_' and '.', and may not start or end with '.'.": (
        "Le nom d'utilisateur peut contenir des lettres, des chiffres, « _ » et « . », "
        "et ne peut ni commencer ni finir par « . »."
    ),
    "Wrong e-mail or password.": "Adresse e-mail ou mot de passe incorrect.",
    "Wrong password.": "Mot de passe incorrect.",
    "Enter the 6-digit code from your authenticator app.": (
        "Saisissez le code à 6 chiffres de votre application d'authentification."
    ),
    "That code is not valid.": "Ce code n'est pas valide.",
    "Two-factor authentication is already on.": "L'authentification à deux facteurs est déjà activée.",
    "Two-factor authentication is off.": "L'authentification à deux facteurs est désactivée.",
    "Start two-factor setup first.": "Commencez d'abord la configuration à deux facteurs.",
    "Too many failed sign-ins: try again in {n} seconds.": (
        "Trop d'échecs de connexion : réessayez dans {n} secondes."
    ),
    "This session has ended: sign in again.": "Cette session est terminée : reconnectez-vous.",
    "That sign-in token is not valid.": "Ce jeton de connexion n'est pas valide.",
    "Status must be one of {x}.": "Le statut doit être l'un de : {x}.",
    "Language must be EN or FR.": "La langue doit être EN ou FR.",
    "Search by the start of a username: 1-32 letters, digits, '_' or '.'.": (
        "Cherchez par le début d'un nom d'utilisateur : 1 à 32 lettres, chiffres, « _ » ou « . »."
    ),
    "No such user.": "Cet utilisateur n'existe pas.",
    # servers, channels, messages
    "No such server.": "Ce serveur n'existe pas.",
    "No such channel.": "Ce salon n'existe pas.",
    "No such message.": "Ce message n'existe pas.",
    "No such member.": "Ce membre n'existe pas.",
    "No such member in this server.": "Ce membre n'existe pas dans ce serveur.",
    "No such role.": "Ce rôle n'existe pas.",
    "No such role in this server.": "Ce rôle n'existe pas dans ce serveur.",
    "No such invite.": "Cette invitation n'existe pas.",
    "That is not an invite code.": "Ce n'est pas un code d'invitation.",
    "'code' is not an invite code.": "« code » n'est pas un code d'invitation.",
    "This invite has expired.": "Cette invitation a expiré.",
    "This invite was revoked.": "Cette invitation a été révoquée.",
    "This invite has been used as many times as it allows.": (
        "Cette invitation a atteint son nombre maximal d'utilisations."
    ),
    "You are already a member.": "Vous êtes déjà membre.",
    "You are banned from this server.": "Vous êtes banni de ce serveur.",
    "That user is not banned.": "Cet utilisateur n'est pas banni.",
    "You already own this server.": "Ce serveur vous appartient déjà.",
    "Only the owner can transfer ownership.": "Seul le propriétaire peut transférer la propriété.",
    "Only members can invite people to a server.": "Seuls les membres peuvent inviter sur un serveur.",
    "Only its creator or a member with Manage Server can revoke it.": (
        "Seuls son créateur ou un membre avec « Gérer le serveur » peuvent la révoquer."
    ),
    "The owner cannot leave: transfer ownership to another member first.": (
        "Le propriétaire ne peut pas partir : transférez d'abord la propriété à un autre membre."
    ),
    "You need the {x} permission.": "Il vous faut la permission {x}.",
    "You need the {x} permission in this channel.": "Il vous faut la permission {x} dans ce salon.",
    "You need the {x} permission in that folder.": "Il vous faut la permission {x} dans ce dossier.",
    "You need the {x} permission in every channel of this folder.": (
        "Il vous faut la permission {x} dans chaque salon de ce dossier."
    ),
    "You cannot {x} yourself.": "Vous ne pouvez pas vous appliquer cette action ({x}).",
    "Nobody can {x} the owner.": "Personne ne peut appliquer cette action ({x}) au propriétaire.",
    "You may not send messages in this channel.": "Vous ne pouvez pas envoyer de messages dans ce salon.",
    "You may not change this message.": "Vous ne pouvez pas modifier ce message.",
    "You no longer have access to this channel.": "Vous n'avez plus accès à ce salon.",
    "This channel was deleted.": "Ce salon a été supprimé.",
    "Messages can only be sent to text channels.": (
        "Les messages ne peuvent être envoyés que dans des salons textuels."
    ),
    "The message you reply to is not in this channel.": (
        "Le message auquel vous répondez n'est pas dans ce salon."
    ),
    "Folders cannot be nested.": "Les dossiers ne peuvent pas être imbriqués.",
    "Folders have no topic.": "Les dossiers n'ont pas de sujet.",
    "The parent must be a folder.": "Le parent doit être un dossier.",
    "The parent must be a folder of the same server.": "Le parent doit être un dossier du même serveur.",
    "Kind must be TEXT, VOICE or FOLDER.": "Le type doit être TEXT, VOICE ou FOLDER.",
    "Visibility must be PUBLIC or PRIVATE.": "La visibilité doit être PUBLIC ou PRIVATE.",
    "targetKind must be ROLE or MEMBER.": "targetKind doit être ROLE ou MEMBER.",
    "position must be 0 or more.": "position doit être supérieure ou égale à 0.",
    "position must be between 0 and {n}.": "position doit être comprise entre 0 et {n}.",
    "@everyone cannot be deleted.": "@everyone ne peut pas être supprimé.",
    "@everyone cannot be renamed.": "@everyone ne peut pas être renommé.",
    "@everyone is always the lowest role.": "@everyone est toujours le rôle le plus bas.",
    "@everyone cannot be given access to a private channel.": (
        "@everyone ne peut pas recevoir l'accès à un salon privé."
    ),
    "Every member has @everyone.": "Chaque membre a @everyone.",
    "A server has at most {n} roles.": "Un serveur a au plus {n} rôles.",
    "A server has at most {n} channels.": "Un serveur a au plus {n} salons.",
    "A server has at most {n} usable invites: revoke some first.": (
        "Un serveur a au plus {n} invitations utilisables : révoquez-en d'abord."
    ),
    "At most {n} roles.": "Au plus {n} rôles.",
    "At most {n} members.": "Au plus {n} membres.",
    "A permission cannot be both allowed and denied.": (
        "Une permission ne peut pas être à la fois accordée et refusée."
    ),
    "You cannot grant permissions you do not have.": (
        "Vous ne pouvez pas accorder des permissions que vous n'avez pas."
    ),
    "You cannot allow or deny permissions you do not have.": (
        "Vous ne pouvez pas accorder ou refuser des permissions que vous n'avez pas."
    ),
    "That role is not below your highest role.": "Ce rôle n'est pas en dessous de votre rôle le plus élevé.",
    "Their highest role is not below yours.": "Son rôle le plus élevé n'est pas en dessous du vôtre.",
    "Administrators cannot be timed out.": "Les administrateurs ne peuvent pas être exclus temporairement.",
    "Give either until or seconds, not both.": "Indiquez until ou seconds, pas les deux.",
    "until must be in the future and at most 28 days away.": (
        "until doit être dans le futur et à 28 jours au plus."
    ),
    "maxUses must be between 0 (unlimited) and {n}.": "maxUses doit être compris entre 0 (illimité) et {n}.",
    "roleIds and memberIds apply to private channels only.": (
        "roleIds et memberIds ne s'appliquent qu'aux salons privés."
    ),
    # pictures (media/images.py, kernel/uploads.py)
    "Upload a PNG, JPEG, GIF or WebP image.": "Envoyez une image PNG, JPEG, GIF ou WebP.",
    "The image could not be read.": "L'image est illisible.",
    "The image is too large: at most {n} pixels a side and {m} megapixels.": (
        "L'image est trop grande : au plus {n} pixels de côté et {m} mégapixels."
    ),
    "The file is larger than {n} MiB.": "Le fichier dépasse {n} Mio.",
    "Send the file as a GraphQL multipart upload.": "Envoyez le fichier en téléversement multipart GraphQL.",
    # attachments (media/attachments.py, messages/attachments.py)
    "The file is empty.": "Le fichier est vide.",
    "The file is presented as an image but its content is not one.": (
        "Le fichier est présenté comme une image mais son contenu n'en est pas une."
    ),
    "At most {n} files per message.": "Au plus {n} fichiers par message.",
    "The files of a message may total at most {n} MiB.": (
        "Les fichiers d'un message ne peuvent dépasser {n} Mio au total."
    ),
    "You may not attach files in this channel.": "Vous ne pouvez pas joindre de fichiers dans ce salon.",
    "No such upload waiting in this channel.": "Aucun fichier téléversé de ce type n'attend dans ce salon.",
    "At most {n} uploads may wait to be sent.": (
        "Au plus {n} fichiers téléversés peuvent attendre d'être envoyés."
    ),
    # webhooks and bots (subgraphs/webhooks/, subgraphs/messages/embeds.py)
    "No such webhook.": "Ce webhook n'existe pas.",
    "No such bot.": "Ce bot n'existe pas.",
    "Invalid webhook token.": "Jeton de webhook invalide.",
    "Invalid bot token.": "Jeton de bot invalide.",
    "Unknown webhook.": "Webhook inconnu.",
    "You need Manage Webhooks in this channel.": "Il vous faut Gérer les webhooks dans ce salon.",
    "You need Manage Server to manage bots.": "Il vous faut Gérer le serveur pour gérer les bots.",
    "Webhooks post in text channels only.": "Les webhooks ne publient que dans les salons textuels.",
    "A channel has at most {n} webhooks.": "Un salon a au plus {n} webhooks.",
    "A server has at most {n} bots.": "Un serveur a au plus {n} bots.",
    "Must be {n} or fewer in length.": "Doit contenir au plus {n} éléments ou caractères.",
    "This field is required.": "Ce champ est obligatoire.",
    "Cannot send an empty message.": "Impossible d'envoyer un message vide.",
    "Embed size exceeds maximum size of {n}.": "La taille des embeds dépasse le maximum de {n}.",
    "Scheme must be http or https.": "Le schéma doit être http ou https.",
    "Internal server error": "Erreur interne du serveur",
}


@cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    """Exact messages first (cheap and unambiguous), then templates, longest first (most specific)."""
    entries = sorted(FRENCH.items(), key=lambda item: ("{" in item[0], -len(item[0])))
    compiled = []
    for english, french in entries:
        parts = re.split(r"\{(\w+)\}", english)
        pattern = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
        )
        compiled.append((re.compile(f"^{pattern}$", re.DOTALL), french))
    return compiled


def negotiate(user_locale: str | None, accept_language: str | None) -> str:
    """The user's setting wins; else the first supported language in Accept-Language (q-ordered)."""
    if user_locale and user_locale[:2].lower() in LANGUAGES:
        return user_locale[:2].lower()
    ranked: list[tuple[float, str]] = []
    for i, item in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality + i * 1e-6, tag.strip()[:2].lower()))
    return next((lang for _q, lang in sorted(ranked) if lang in LANGUAGES), DEFAULT_LANGUAGE)


def set_language(language: str) -> None:
    _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _language.get()


def translate(message: str, language: str | None = None) -> str:
    """`message` in `language` (default: the current request's); English when there is no translation."""
    if (language or _language.get()) != "fr":
        return message
    for pattern, french in _compiled():
        found = pattern.match(message)
        if found:
            return french.format(**found.groupdict())
    return message
