"""Outgoing email over EWS: CreateItem with MessageDisposition SendAndSaveCopy.

The message goes as its RFC 822 text (MimeContent), so that what Exchange sends is what the
portal built: Message-ID, tracking token, In-Reply-To. The copy in Sent Items carries the CRM
email's id in an extended property (the same ``CrmId`` the ACT items carry), and ``was_sent``
looks for it there: after a crash between sending and recording, the email is found, not sent
again. Connection, credentials and error words are those of ``syncjobs.backends.ews``.
"""

from __future__ import annotations

import contextlib
from email.message import EmailMessage
from email.policy import SMTP

from exchangelib import Message
from exchangelib import errors as ews_errors

from syncjobs.backends.ews import CrmId, EwsBackend, classify
from syncjobs.errors import ItemError, PermanentError, SyncError

with contextlib.suppress(ValueError):  # registered already (module reloaded, or by another email module)
    Message.register("crm_id", CrmId)

# Exchange refuses the message itself: sending it again as it is would fail again.
MESSAGE_ERRORS = (
    ews_errors.ErrorInvalidRecipients,
    ews_errors.ErrorInvalidSmtpAddress,
    ews_errors.ErrorMailRecipientNotFound,
    ews_errors.ErrorMessageSizeExceeded,
    ews_errors.ErrorItemSave,
    ews_errors.ErrorItemSavePropertyError,
)


class EwsOutgoing(EwsBackend):
    """The OutgoingTransport of Exchange mailboxes (``syncjobs.mail.transport.OutgoingTransport``)."""

    def send(self, message: EmailMessage, crm_id: str) -> None:
        def create() -> None:
            Message(
                account=self.account,
                folder=self._folder("sentitems"),
                mime_content=message.as_bytes(policy=SMTP),
                crm_id=crm_id,
            ).send_and_save()

        try:
            create()
        except MESSAGE_ERRORS as error:
            raise ItemError(f"Exchange refused the message ({type(error).__name__}): {error}") from error
        except ews_errors.ErrorSendAsDenied as error:
            self._failed = True
            raise PermanentError(f"The mailbox may not send as its own address (ErrorSendAsDenied): {error}") from error
        except (ValueError, TypeError) as error:
            raise ItemError(f"The message could not be sent as built: {error}") from error
        except SyncError:
            raise
        except Exception as error:
            self._failed = True
            raise classify(error) from error

    def was_sent(self, crm_id: str, message_id: str) -> bool | None:
        """Whether Sent Items holds a message stamped with this CRM id (Exchange always can tell)."""
        return self._call(lambda: self._folder("sentitems").filter(crm_id=crm_id).exists())
