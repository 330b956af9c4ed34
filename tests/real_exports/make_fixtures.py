"""Writes the real-shaped export fixtures of this folder (issue 25) and their expected messages.

Every file copies the SHAPE of an export that a phone really wrote (see README.md for where each
shape was observed); names, numbers and texts are invented. Invisible characters are spelled out
here as escapes, because they are the point of most files:

    FEFF byte-order mark, 200E LRM, 200F RLM, 202A LRE, 202C PDF, 2068 FSI, 2069 PDI,
    00A0 no-break space, 202F narrow no-break space.

Run `python tests/real_exports/make_fixtures.py` to rewrite the files. Each `<name>.txt` gets a
`<name>.expected.jsonl`: one object per message, in order, with "timestamp", "sender", "text" and
"kind" (null for a real message, else the placeholder kind: media, deleted, call, location,
view_once, poll, system). Texts are compared for real messages only; placeholders by kind.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
LRM, RLM, BOM, NBSP, NNBSP = "\u200e", "\u200f", "\ufeff", "\u00a0", "\u202f"
LRE, PDF, FSI, PDI = "\u202a", "\u202c", "\u2068", "\u2069"

FIXTURES: dict[str, dict] = {}


def E(raw: str, ts: str | None = None, sender: str | None = None, text: str | None = None,
      kind: str | None = None) -> tuple:
    """One line of an export; with `ts` it starts a message expected as (ts, sender, text, kind)."""
    return (raw, None if ts is None else {"timestamp": ts, "sender": sender, "text": text, "kind": kind})


def fixture(name: str, cls: str, lines: list[tuple], crlf: bool = False, note: str = "") -> None:
    FIXTURES[name] = {"cls": cls, "lines": lines, "crlf": crlf, "note": note}


# ------------------------------------------------------------------------------- 1. invisible marks

def _feff_group(ampm: bool) -> list[tuple]:
    """German iOS group export whose lines start with U+FEFF (once or twice), one inside '['."""
    def t(hms: str) -> str:
        if not ampm:
            return hms
        h, m, s = (int(x) for x in hms.split(":"))
        return f"{h % 12 or 12}:{m:02d}:{s:02d} {'PM' if h >= 12 else 'AM'}"
    return [
        E(f"[{BOM}29.01.18, {t('12:24:03')}] Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand "
          "außerhalb dieses Chats kann sie lesen oder anhören, nicht einmal WhatsApp. Tippe, um mehr zu erfahren."),
        E(f"{BOM}{BOM}[29.01.18, {t('12:24:03')}] Du hast die Gruppe \"Wandern 🏔️\" erstellt."),
        E(f"{BOM}{BOM}[29.01.18, {t('12:24:04')}] Du hast Jonas hinzugefügt."),
        E(f"{BOM}{BOM}[29.01.18, {t('12:24:05')}] Jonas: Hallo zusammen :)",
          "2018-01-29T12:24:05", "Jonas", "Hallo zusammen :)"),
        E(f"{BOM}{BOM}[29.01.18, {t('12:25:03')}] Du hast Lena hinzugefügt."),
        E(f"{BOM}[{BOM}29.01.18, {t('12:26:03')}] Mira: Test test", "2018-01-29T12:26:03", "Mira", "Test test"),
        E(f"{BOM}[29.01.18, {t('23:33:03')}] Lena: Ist das der Chat für Samstag?",
          "2018-01-29T23:33:03", "Lena", "Ist das der Chat für Samstag?"),
        E(f"{BOM}[29.01.18, {t('23:45:03')}] Jonas: Ja genau!", "2018-01-29T23:45:03", "Jonas", "Ja genau!"),
        E(f"{BOM}[29.01.18, {t('23:46:03')}] Lena: {LRM}<angehängt: PTT-20180129-WA0025.opus>",
          "2018-01-29T23:46:03", "Lena", None, "media"),
        E(f"{BOM}[29.01.18, {t('23:47:03')}] Jonas: <Medien ausgeschlossen>", "2018-01-29T23:47:03", "Jonas",
          None, "media"),
        E(f"{BOM}[29.01.18, {t('23:49:03')}] Lena: {LRM}Keine Ahnung, wir probieren es einfach aus",
          "2018-01-29T23:49:03", "Lena", "Keine Ahnung, wir probieren es einfach aus"),
        E(f"{BOM}[29.01.18, {t('23:52:03')}] Jonas: {LRM}Schick mal den Link{BOM}!",
          "2018-01-29T23:52:03", "Jonas", "Schick mal den Link!"),
        E(f"{BOM}[29.01.18, {t('23:53:03')}] Lena: https://example.org/wande{BOM}rweg",
          "2018-01-29T23:53:03", "Lena", "https://example.org/wanderweg"),
        E(f"{BOM}[29.01.18, {t('23:59:03')}] Jonas: Standort: https://maps.google.com/?q=50.9425526,6.9523387",
          "2018-01-29T23:59:03", "Jonas", None, "location"),
        E(f"{BOM}[29.01.18, {t('23:59:03')}] Lena: Live-Standort wird geteilt.", "2018-01-29T23:59:03", "Lena",
          None, "location"),
        E(f"[29.01.18, {t('23:59:04')}] Jonas: Mira, schickst du noch das Foto von gestern?",
          "2018-01-29T23:59:04", "Jonas", "Mira, schickst du noch das Foto von gestern?"),
        E(f"{BOM}[30.01.18, {t('00:00:03')}] Lena: Bis Samstag!", "2018-01-30T00:00:03", "Lena", "Bis Samstag!"),
        E(f"{BOM}[30.01.18, {t('00:02:03')}] Jonas: {LRM}Alles klar, los geht's 😌",
          "2018-01-30T00:02:03", "Jonas", "Alles klar, los geht's 😌"),
        E(f"{BOM}[30.01.18, {'00:04:03 AM' if ampm else '00:04:03'}] Mira: Ich bin dabei",
          "2018-01-30T00:04:03", "Mira", "Ich bin dabei"),
        E("mit Zelt und Kocher", None),
    ]


_g = _feff_group(False)
_g[-2] = (_g[-2][0], {**_g[-2][1], "text": "Ich bin dabei\nmit Zelt und Kocher"})
fixture("marks_de_ios_feff_24h", "1 marks", _g,
        note="German iOS group: U+FEFF before most lines and after '[', senderless notices, LRM text starts")
_g = _feff_group(True)
_g[-2] = (_g[-2][0], {**_g[-2][1], "text": "Ich bin dabei\nmit Zelt und Kocher"})
fixture("marks_de_ios_feff_ampm", "1 marks", _g, note="the same chat on a 12-hour clock ('00:04:03 AM' too)")

fixture("marks_de_android_feff", "1 marks", [
    E(f"{BOM}29.01.18, 12:24 - Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses "
      "Chats kann sie lesen oder anhören, nicht einmal WhatsApp. Tippe, um mehr zu erfahren."),
    E(f"{BOM}29.01.18, 12:24 - Du hast die Gruppe \"Wandern 🏔️\" erstellt."),
    E(f"{BOM}29.01.18, 12:24 - Jonas: Hallo zusammen :)", "2018-01-29T12:24:00", "Jonas", "Hallo zusammen :)"),
    E(f"{BOM}29.01.18, 12:26 - Mira: Test test", "2018-01-29T12:26:00", "Mira", "Test test"),
    E("29.01.18, 23:33 - Lena: Ist das der Chat für Samstag?", "2018-01-29T23:33:00", "Lena",
      "Ist das der Chat für Samstag?"),
    E(f"29.01.18, 23:46 - Lena: {LRM}PTT-20180129-WA0025.opus (Datei angehängt)", "2018-01-29T23:46:00", "Lena",
      None, "media"),
    E("29.01.18, 23:47 - Jonas: <Medien ausgeschlossen>", "2018-01-29T23:47:00", "Jonas", None, "media"),
    E(f"29.01.18, 23:49 - Lena: {LRM}Keine Ahnung, wir probieren es einfach aus", "2018-01-29T23:49:00", "Lena",
      "Keine Ahnung, wir probieren es einfach aus"),
    E("29.01.18, 23:59 - Lena: Live-Standort wird geteilt.", "2018-01-29T23:59:00", "Lena", None, "location"),
    E(f"{BOM}30.01.18, 00:04 - Jonas: Wer bringt den Kocher mit?", "2018-01-30T00:04:00", "Jonas",
      "Wer bringt den Kocher mit?"),
    E(f"{BOM}30.01.18, 00:10 - Mira: Ich!", "2018-01-30T00:10:00", "Mira", "Ich!"),
], note="German Android group: U+FEFF before some lines, LRM before an attachment and a text")

fixture("marks_en_ios_lrm_texts", "1 marks", [
    E("[1/29/18, 12:24:03 PM] Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
      "WhatsApp, can read or listen to them. Tap to learn more."),
    E("[1/29/18, 12:24:05 PM] You created group \"Book club\""),
    E("[1/29/18, 12:24:07 PM] You added Priya"),
    E("[1/29/18, 12:24:12 PM] Priya: Hi all!", "2018-01-29T12:24:12", "Priya", "Hi all!"),
    E(f"{BOM}[1/29/18, 12:26:03 PM] You changed this group's icon"),
    E("[1/29/18, 11:33:03 PM] Tomas: Is this the reading list chat?", "2018-01-29T23:33:03", "Tomas",
      "Is this the reading list chat?"),
    E(f"[1/29/18, 11:46:03 PM] Priya: {LRM}{LRM}<attached: {LRM}PTT-20180129-WA0025.opus>",
      "2018-01-29T23:46:03", "Priya", None, "media"),
    E("[1/29/18, 11:47:03 PM] Tomas: <Media omitted>", "2018-01-29T23:47:03", "Tomas", None, "media"),
    E(f"[1/29/18, 11:49:03 PM] Priya: {LRM}No idea, lets try it out!", "2018-01-29T23:49:03", "Priya",
      "No idea, lets try it out!"),
    E(f"[1/29/18, 11:59:03 PM] Tomas: {LRM}How about chapter three?", "2018-01-29T23:59:03", "Tomas",
      "How about chapter three?"),
    E("[1/29/18, 11:59:05 PM] Tomas: Location: https://maps.google.com/?q=50.9425526,6.9523387",
      "2018-01-29T23:59:05", "Tomas", None, "location"),
    E("[1/29/18, 11:59:09 PM] Priya: live location shared", "2018-01-29T23:59:09", "Priya", None, "location"),
    E(f"[1/30/18, 12:02:03 AM] Tomas: {LRM}{LRM}Alright, see you then 😌", "2018-01-30T00:02:03", "Tomas",
      "Alright, see you then 😌"),
    E(f"[1/30/18, 00:04:03 AM] Priya: {LRM}{LRM}By the way, chapter four is short.", "2018-01-30T00:04:03",
      "Priya", "By the way, chapter four is short."),
], note="English iOS group: texts that start with LRM are real messages; senderless notices")


def _phone(n: str) -> str:
    return LRE + n.replace(" ", NBSP) + PDF


fixture("marks_ios_phone_senders", "1 marks", [
    E(f"[12/30/23, 6:58:01{NNBSP}PM] Lisbon trip: {LRM}Messages and calls are end-to-end encrypted. No one outside "
      "of this chat, not even WhatsApp, can read or listen to them."),
    E(f"[12/30/23, 6:58:02{NNBSP}PM] Lisbon trip: {LRM}{_phone('+1 555 0142')} added {_phone('+1 555 0178')}"),
    E(f"[12/30/23, 7:01:15{NNBSP}PM] {_phone('+1 555 0142')}: Who books the flat?", "2023-12-30T19:01:15",
      "+1 555 0142", "Who books the flat?"),
    E(f"[12/30/23, 7:02:40{NNBSP}PM] {_phone('+1 555 0178')}: I can, {FSI}@Rui Costa{PDI} said he would help",
      "2023-12-30T19:02:40", "+1 555 0178", f"I can, {FSI}@Rui Costa{PDI} said he would help"),
    E(f"{LRM}[12/30/23, 7:03:00{NNBSP}PM] {_phone('+1 555 0178')}: {LRM}image omitted", "2023-12-30T19:03:00",
      "+1 555 0178", None, "media"),
    E(f"[12/30/23, 7:05:10{NNBSP}PM] Rui Costa: {LRM}This message was deleted.", "2023-12-30T19:05:10",
      "Rui Costa", None, "deleted"),
    E(f"[12/31/23, 9:15:00{NNBSP}AM] Lisbon trip: {LRM}Rui Costa changed the group description"),
    E(f"[12/31/23, 9:16:30{NNBSP}AM] Rui Costa: Flights are booked ✈️", "2023-12-31T09:16:30", "Rui Costa",
      "Flights are booked ✈️"),
    E(f"[12/31/23, 9:17:00{NNBSP}AM] {_phone('+1 555 0142')}: {LRM}Great, thanks!", "2023-12-31T09:17:00",
      "+1 555 0142", "Great, thanks!"),
    E(f"[12/31/23, 9:18:00{NNBSP}AM] {LRM}Lisbon trip: {LRM}{_phone('+1 555 0178')} left"),
], note="iOS group: phone-number senders in U+202A..U+202C with no-break spaces, group-name notices")


# ---------------------------------------------------------------- 2. attachment lines with file names

# Per language, as WhatsApp iOS writes it with the phone language set so (US region date format).
# keys: enc (encryption notice), img, vid, card, stk, doc (document omitted), pages, youdel, del, loc,
# sec (security code changed, two parts), hi/reply/bye (invented texts), date/time shapes.
IOS_LANGS = {
    "en": dict(enc="Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
                   "can read or listen to them.", img="image omitted", vid="video omitted",
               card="Contact card omitted", stk="sticker omitted", doc="document omitted", pages="2 pages",
               youdel="You deleted this message.", dele="This message was deleted.", loc="Location",
               sec=("Your security code with Ben changed.", "Tap to learn more."),
               hi="Hello from the lake", reply="Looks great", bye="See you on Monday", comma=True),
    "de": dict(enc="Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses Chats kann "
                   "sie lesen oder anhören, nicht einmal WhatsApp.", img="Bild weggelassen", vid="Video weggelassen",
               card="Kontaktkarte ausgelassen", stk="Sticker weggelassen", doc="Dokument weggelassen",
               pages="2 Seiten", youdel="Du hast diese Nachricht gelöscht.", dele="Diese Nachricht wurde gelöscht.",
               loc="Standort", sec=("Deine Sicherheitsnummer für Ben hat sich geändert.",
                                    "Tippe, um mehr zu erfahren."),
               hi="Grüße vom See", reply="Sieht gut aus", bye="Bis Montag", comma=True),
    "fr": dict(enc="Les messages et les appels sont chiffrés de bout en bout. Aucun tiers, pas même WhatsApp, ne "
                   "peut les lire ou les écouter.", img="image absente", vid="vidéo absente",
               card="Fiche contact manquante", stk="sticker omis", doc="document manquant", pages="2 pages",
               youdel="Vous avez supprimé ce message.", dele="Ce message a été supprimé.", loc="Localisation",
               sec=("Votre code de sécurité avec Ben a changé.", "Appuyez pour en savoir plus."),
               hi="Bonjour du lac", reply="Superbe", bye="À lundi", comma=False),
    "es": dict(enc="Los mensajes y las llamadas están cifrados de extremo a extremo. Nadie fuera de este chat, ni "
                   "siquiera WhatsApp, puede leerlos ni escucharlos.", img="imagen omitida", vid="Video omitido",
               card="Tarjeta de contacto omitida", stk="sticker omitido", doc="documento omitido",
               pages="2 páginas", youdel="Eliminaste este mensaje.", dele="Se eliminó este mensaje.",
               loc="Ubicación", sec=("Cambió tu código de seguridad con Ben.", "Pulsa para obtener más información."),
               hi="Saludos desde el lago", reply="Qué bonito", bye="Hasta el lunes", comma=True),
    "it": dict(enc="I messaggi e le chiamate sono crittografati end-to-end. Nessuno al di fuori di questa chat, "
                   "nemmeno WhatsApp, può leggerne o ascoltarne il contenuto.", img="immagine omessa",
               vid="video omesso", card="Scheda contatto omessa", stk="sticker non incluso", doc="documento omesso",
               pages="2 pagine", youdel="Hai eliminato questo messaggio.", dele="Questo messaggio è stato eliminato.",
               loc="Posizione", sec=("Il tuo codice di sicurezza con Ben è cambiato.", "Tocca per saperne di più."),
               hi="Saluti dal lago", reply="Bellissimo", bye="A lunedì", comma=True),
    "pt_PT": dict(enc="As mensagens e chamadas são encriptadas ponto a ponto. Ninguém fora desta conversa, nem "
                      "mesmo o WhatsApp, pode ler ou ouvi-las.", img="imagem não revelada", vid="vídeo não revelado",
                  card="Contacto não revelado", stk="sticker não revelado", doc="documento não revelado",
                  pages="2 páginas", youdel="Apagou esta mensagem.", dele="Esta mensagem foi apagada.",
                  loc="Localização", sec=("O seu código de segurança partilhado com Ben mudou.",
                                          "Toque para saber mais."),
                  hi="Olá do lago", reply="Que bonito", bye="Até segunda", comma=False),
    "pt_BR": dict(enc="As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta e ficam somente "
                      "entre você e os participantes desta conversa. Nem mesmo o WhatsApp pode ler ou ouvi-las.",
                  img="imagem ocultada", vid="vídeo omitido", card="Cartão do contato omitido",
                  stk="figurinha omitida", doc="documento omitido", pages="2 páginas",
                  youdel="Você apagou esta mensagem.", dele="Mensagem apagada", loc="Localização",
                  sec=("Seu código de segurança com Ben mudou.", "Toque para saber mais."),
                  hi="Oi do lago", reply="Que lindo", bye="Até segunda", comma=True),
    "ru": dict(enc="Сообщения и звонки защищены сквозным шифрованием. Третьи лица, включая WhatsApp, не" + NBSP +
                   "могут прочитать ваши сообщения или прослушать звонки.", img="изображение отсутствует",
               vid="видео отсутствует", card="Карточка контакта отсутствует", stk="стикер не добавлен",
               doc="документ отсутствует", pages="2 страницы", youdel="Вы удалили данное сообщение.",
               dele="Данное сообщение удалено.", loc="Местоположение",
               sec=("Ваш код безопасности с контактом Ben изменился.", "Подробнее."),
               hi="Привет с озера", reply="Красиво", bye="До понедельника", comma=True),
    "uk": dict(enc="Повідомлення й дзвінки захищено наскрізним шифруванням. Прочитати чи прослухати їх не зможе "
                   "жодна стороння особа, навіть із WhatsApp.", img="зображення відсутнє", vid="відео відсутнє",
               card="Картка контакту відсутня", stk="Наклейку не додано", doc="документ пропущено",
               pages="2 сторінки", youdel="Ви видалили це повідомлення.", dele="Це повідомлення було видалено.",
               loc="Розташування", sec=("Код безпеки з контактом Ben змінився.", "Торкніться, щоб дізнатися більше."),
               hi="Привіт з озера", reply="Гарно", bye="До понеділка", comma=True),
    "cs": dict(enc="Zprávy a hovory jsou opatřeny koncovým šifrováním. Nikdo, kdo není přímým účastníkem této "
                   "konverzace, ji nemůže sledovat ani poslouchat. Dokonce ani WhatsApp.", img="obrázek vynechán",
               vid="video vynecháno", card="Vizitka vynechána", stk="nálepka vynechána", doc="dokument vynechán",
               pages="2 strany", youdel="Tuto zprávu jste smazal/a.", dele="Tato zpráva byla smazána.",
               loc="Poloha", sec=(f"Bezpečnostní kód mezi vámi a{NBSP}uživatelem Ben byl změněn.",
                                  "Další informace zobrazíte klepnutím."),
               hi="Pozdrav od jezera", reply="Krása", bye="Na shledanou v pondělí", comma=False),
    "nl": dict(enc="Berichten en gesprekken worden end-to-end versleuteld. Niemand buiten deze chat kan ze lezen of "
                   "beluisteren, zelfs WhatsApp niet.", img="afbeelding weggelaten", vid="video weggelaten",
               card="Visitekaartje weggelaten", stk="sticker weggelaten", doc="document weggelaten",
               pages="2 pagina's", youdel="U hebt dit bericht verwijderd.", dele="Dit bericht is verwijderd.",
               loc="Locatie", sec=("Uw beveiligingscode voor Ben is gewijzigd.", "Tik voor meer informatie."),
               hi="Groeten van het meer", reply="Mooi", bye="Tot maandag", comma=False),
    "pl": dict(enc="Wiadomości i połączenia są w pełni zaszyfrowane. Nikt spoza czatu, nawet WhatsApp, nie może ich "
                   "odczytać ani odsłuchać.", img="obraz pominięty", vid="wideo pominięte",
               card="Pominięta wizytówka kontaktu", stk="pominięto naklejkę", doc="dokument pominięty",
               pages="2 strony", youdel="Usunąłeś(-ęłaś) tę wiadomość.", dele="Ta wiadomość została usunięta.",
               loc="Lokalizacja", sec=("Twój kod zabezpieczeń z użytkownikiem Ben zmienił się.",
                                       "Stuknij, aby dowiedzieć się więcej."),
               hi="Pozdrowienia znad jeziora", reply="Pięknie", bye="Do poniedziałku", comma=True),
    "tr": dict(enc="Mesajlar ve aramalar uçtan uca şifrelidir. WhatsApp da dahil olmak üzere bu sohbetin dışında "
                   "bulunan hiç kimse mesaj ve aramalarınızı okuyamaz ve dinleyemez.", img="görüntü dahil edilmedi",
               vid="video dahil edilmedi", card="Kişi kartı dahil edilmedi", stk="Çıkartma dahil edilmedi",
               doc="belge dahil edilmedi", pages="2 sayfa", youdel="Bu mesajı sildiniz.", dele="Bu mesaj silindi.",
               loc="Konum", sec=("Ben ile aranızdaki güvenlik kodu değişti.",
                                 "Daha fazla bilgi edinmek için dokunun."),
               hi="Gölden selamlar", reply="Çok güzel", bye="Pazartesi görüşürüz", comma=False),
    "ja": dict(enc="メッセージと通話はエンドツーエンド暗号化されています。チャットの参加者以外は、たとえWhatsAppでも読んだり"
                   "聞いたりすることはできません。", img="画像は含まれていません", vid="ビデオは含まれていません",
               card="連絡先カードを省略", stk="スタンプは含まれていません", doc="ドキュメントは含まれていません",
               pages="2ページ", youdel="このメッセージを削除しました。", dele="このメッセージは削除されました。",
               loc="位置情報", sec=("Benとのセキュリティコードが変更されました。", "タップして詳細を表示。"),
               hi="湖からこんにちは", reply="きれいだね", bye="また月曜日に", comma=False),
    "ko": dict(enc="메시지 및 전화는 종단간 암호화되어 안전합니다. 아무도 엿보거나 들을 수 없습니다. WhatsApp에게도 이러한 "
                   "권한이 없습니다.", img="이미지 생략됨", vid="비디오 생략됨", card="연락처 카드 생략됨",
               stk="스티커 제외됨", doc="문서 생략됨", pages="2페이지", youdel="이 메시지를 삭제했습니다.",
               dele="이 메시지는 삭제되었습니다.", loc="위치",
               sec=("Ben님과의 보안 코드가 변경되었습니다.", "더 알아보려면 탭하세요."),
               hi="호수에서 안녕", reply="멋지다", bye="월요일에 봐", comma=True),
    "zh": dict(enc="訊息和通話經端對端加密。對話以外的任何人 (即使是 WhatsApp) 均無法查看或聆聽那些內容。",
               img="圖片已略去", vid="影片已略去", card="聯絡人卡片已略去", stk="貼圖已略去", doc="文件已略去",
               pages="2 頁", youdel="您已刪除此訊息。", dele="此訊息已刪除。", loc="位置",
               sec=("您與Ben之間的安全代碼已變更。", "點按以瞭解詳情。"),
               hi="湖邊問好", reply="好漂亮", bye="星期一見", comma=True),
    "hi": dict(enc="मैसेजेस और कॉल्स एंड-टू-एंड एन्क्रिप्टेड हैं. इस चैट में शामिल लोगों के अलावा कोई भी इन्हें पढ़ या सुन नहीं "
                   "सकता, WhatsApp भी नहीं.", img="फ़ोटो हटाई गई", vid="वीडियो छोड़ा गया",
               card="कॉन्टैक्ट कार्ड छोड़ा गया", stk="स्टिकर छोड़ा गया", doc="डॉक्यूमेंट छोड़ा गया", pages="2 पेज",
               youdel="आपने यह मैसेज डिलीट किया.", dele="यह मैसेज डिलीट कर दिया गया है.", loc="लोकेशन",
               sec=("Ben के लिए आपका सुरक्षा कोड बदल गया है.", "ज़्यादा जानने के लिए टैप करें."),
               hi="झील से नमस्ते", reply="बहुत सुंदर", bye="सोमवार को मिलते हैं", comma=True),
    "id": dict(enc="Pesan dan panggilan terenkripsi secara end-to-end. Tidak seorang pun di luar chat ini, termasuk "
                   "WhatsApp, yang dapat membaca atau mendengarkannya.", img="gambar tidak disertakan",
               vid="video tidak disertakan", card="Kartu kontak tidak disertakan", stk="stiker tidak disertakan",
               doc="dokumen tidak disertakan", pages="2 halaman", youdel="Anda menghapus pesan ini.",
               dele="Pesan ini dihapus.", loc="Lokasi",
               sec=("Kode keamanan Anda dengan Ben telah berubah.", "Ketuk untuk info selengkapnya."),
               hi="Salam dari danau", reply="Indah sekali", bye="Sampai Senin", comma=False, dots=True),
    "th": dict(enc="ข้อความและการโทรได้รับการเข้ารหัสจากต้นทางถึงปลายทาง ผู้ที่ไม่ได้อยู่ในแชทนี้จะไม่สามารถอ่านหรือฟังได้แม้แต่ "
                   "WhatsApp เอง", img="ไม่มีรูปภาพ", vid="วิดีโอถูกลบ", card="บัตรรายชื่อที่ละเว้น",
               stk="ไม่มีสติกเกอร์", doc="ละเว้นเอกสาร", pages="2 หน้า", youdel="คุณได้ลบข้อความนี้",
               dele="ข้อความนี้ถูกลบแล้ว", loc="ตำแหน่งที่ตั้ง",
               sec=("รหัสความปลอดภัยของคุณกับ Ben มีการเปลี่ยนแปลง", "แตะเพื่อเรียนรู้เพิ่มเติม"),
               hi="สวัสดีจากทะเลสาบ", reply="สวยมาก", bye="เจอกันวันจันทร์", comma=False),
    "vi": dict(enc="Tin nhắn và cuộc gọi được mã hóa đầu cuối. Những người bên ngoài cuộc trò chuyện này, kể cả "
                   "WhatsApp, sẽ không đọc hoặc nghe được.", img="đã bỏ qua hình ảnh", vid="đã bỏ video",
               card="Bỏ qua thẻ liên lạc", stk="đã bỏ sticker", doc="đã bỏ qua tài liệu", pages="2 trang",
               youdel="Bạn đã xoá tin nhắn này.", dele="Tin nhắn này đã bị xóa.", loc="Vị trí",
               sec=("Mã bảo mật của bạn với Ben đã thay đổi.", "Nhấn để tìm hiểu thêm."),
               hi="Xin chào từ hồ", reply="Đẹp quá", bye="Hẹn thứ Hai", comma=False, time_first=True),
}


def _ios_lang(lang: str, d: dict) -> list[tuple]:
    def h(date: str, hms: str) -> str:
        if d.get("dots"):
            hms = hms.replace(":", ".")
        if d.get("time_first"):
            return f"[{hms}, {date}]"
        return f"[{date}{',' if d['comma'] else ''} {hms}]"

    def iso(date: str, hms: str) -> str:
        m, dd, yy = (int(x) for x in date.split("/"))
        return f"20{yy:02d}-{m:02d}-{dd:02d}T{hms}"

    ana, ben = "Ana Lima", "Ben Ortiz"
    rows = [("3/18/22", "14:56:01", ben, f"{LRM}{d['enc']}", False, None)]
    rows += [
        ("3/27/22", "21:41:35", ana, d["hi"], False, "text"),
        ("3/27/22", "21:41:55", ana, f"{LRM}{d['img']}", True, "media"),
        ("3/27/22", "21:44:16", ana, f"{LRM}{d['vid']}", True, "media"),
        ("3/27/22", "21:47:55", ana, f"{LRM}{d['card']}", True, "media"),
        ("3/27/22", "21:49:16", ana, f"{LRM}{d['stk']}", True, "media"),
        ("3/27/22", "21:50:09", ana, f"Notes.txt {LRM}{d['doc']}", True, "media"),
        ("3/27/22", "21:50:25", ana, f"Budget 2022.pdf • {LRM}{d['pages']} {LRM}{d['doc']}", True, "media"),
        ("3/27/22", "21:50:43", ana, f"Plan.docx {LRM}{d['doc']}", True, "media"),
        ("3/27/22", "21:50:54", ana, f"{LRM}{d['youdel']}", False, "deleted"),
        ("3/27/22", "21:52:37", ben, d["reply"], False, "text"),
        ("3/27/22", "21:54:45", ben, f"{LRM}{d['dele']}", False, "deleted"),
        ("3/27/22", "21:56:45", ana, f"{LRM}{d['loc']}: https://maps.google.com/?q=51.5021456,-0.127397", False,
         "location"),
        ("4/28/22", "20:17:30", ben, f"{LRM}{LRM}{d['sec'][0]} {LRM}{d['sec'][1]}", False, None),
        ("4/28/22", "20:18:02", ben, d["bye"], False, "text"),
    ]
    out = []
    for date, hms, who, text, lead, kind in rows:
        raw = f"{LRM if lead else ''}{h(date, hms)} {who}: {text}"
        if kind is None:
            out.append(E(raw))
        else:
            out.append(E(raw, iso(date, hms), who, text if kind == "text" else None,
                         None if kind == "text" else kind))
    return out


for _lang, _d in IOS_LANGS.items():
    fixture(f"attach_ios_{_lang}", "2 attachments", _ios_lang(_lang, _d), crlf=True,
            note=f"iOS 1:1 chat, phone language {_lang}: named documents '<name> \\u200e<document omitted>', "
                 "encryption and security-code notices from a sender who also writes real messages")

fixture("attach_ios_en_media", "2 attachments", [
    E(f"[3/18/22, 14:56:01] Ben Ortiz: {LRM}Messages and calls are end-to-end encrypted. No one outside of this chat, "
      "not even WhatsApp, can read or listen to them."),
    E("[3/27/22, 21:41:35] Ana Lima: Hello from the lake", "2022-03-27T21:41:35", "Ana Lima", "Hello from the lake"),
    E(f"{LRM}[3/27/22, 21:41:55] Ana Lima: {LRM}<attached: 00000035-PHOTO-2022-03-27-21-41-55.jpg>",
      "2022-03-27T21:41:55", "Ana Lima", None, "media"),
    E(f"{LRM}[3/27/22, 21:47:55] Ana Lima: {LRM}<attached: 00000042-Ben Ortiz.vcf>", "2022-03-27T21:47:55",
      "Ana Lima", None, "media"),
    E(f"{LRM}[3/27/22, 21:50:09] Ana Lima: Notes.txt {LRM}<attached: 00000046-Notes.txt>", "2022-03-27T21:50:09",
      "Ana Lima", None, "media"),
    E(f"{LRM}[3/27/22, 21:50:25] Ana Lima: Budget 2022.pdf • {LRM}2 pages {LRM}<attached: 00000047-Budget 2022.pdf>",
      "2022-03-27T21:50:25", "Ana Lima", None, "media"),
    E(f"{LRM}[3/27/22, 21:51:57] Ana Lima: {LRM}<attached: 00000051-GIF-2022-03-27-21-51-57.mp4>",
      "2022-03-27T21:51:57", "Ana Lima", None, "media"),
    E("[3/27/22, 21:52:37] Ben Ortiz: Looks great", "2022-03-27T21:52:37", "Ben Ortiz", "Looks great"),
    E(f"[3/27/22, 21:53:00] Ben Ortiz: {LRM}<Anhang: 00000052-Karte.pdf>", "2022-03-27T21:53:00", "Ben Ortiz", None,
      "media"),
    E(f"[3/27/22, 21:53:30] Ben Ortiz: {LRM}<συνημμένο: 00000053-PHOTO-2022-03-27-21-53-30.jpg>",
      "2022-03-27T21:53:30", "Ben Ortiz", None, "media"),
    E("[3/27/22, 21:54:00] Ben Ortiz: See you on Monday", "2022-03-27T21:54:00", "Ben Ortiz", "See you on Monday"),
], note="iOS export with media: '<name> \\u200e<attached: 00000046-name>', any label language")

ANDROID_TAGS = {"en": "file attached", "ru": "файл добавлен", "cs": "soubor byl přiložen", "de": "Datei angehängt",
                "it": "file allegato", "pt_BR": "arquivo anexado", "es": "archivo adjunto", "fr": "fichier joint",
                "tr": "dosya ekli", "nl": "bestand bijgevoegd", "id": "file terlampir", "uk": "файл додано"}
for _lang, _tag in ANDROID_TAGS.items():
    fixture(f"attach_android_{_lang}", "2 attachments", [
        E("18/03/2022, 14:56 - Ana Lima: Hello", "2022-03-18T14:56:00", "Ana Lima", "Hello"),
        E(f"23/03/2022, 13:32 - Ben Ortiz: IMG-20220323-WA0002.jpg ({_tag})", "2022-03-23T13:32:00", "Ben Ortiz",
          None, "media"),
        E("The view from the top", None),
        E(f"23/03/2022, 13:33 - Ben Ortiz: {LRM}Alex Kim.vcf ({_tag})", "2022-03-23T13:33:00", "Ben Ortiz", None,
          "media"),
        E(f"23/03/2022, 13:34 - Ben Ortiz: TR.vcf ({_tag})", "2022-03-23T13:34:00", "Ben Ortiz", None, "media"),
        E(f"27/03/2022, 13:42 - Ana Lima: Budget 2022.pdf ({_tag})", "2022-03-27T13:42:00", "Ana Lima", None,
          "media"),
        E("Budget 2022", None),
        E(f"27/03/2022, 13:43 - Ana Lima: AUD-20220327-WA0000. ({_tag})", "2022-03-27T13:43:00", "Ana Lima", None,
          "media"),
        E("27/03/2022, 21:46 - Ana Lima: Pimlico Gardens", "2022-03-27T21:46:00", "Ana Lima", None, "location"),
        E("London, United Kingdom", None),
        E("https://foursquare.com/v/4e89af95e5fa82ad4c0aa03b", None),
        E("27/03/2022, 21:50 - Ben Ortiz: Thanks, got everything", "2022-03-27T21:50:00", "Ben Ortiz",
          "Thanks, got everything"),
    ], note=f"Android export with media, language {_lang}: '<file name> ({_tag})', caption on the next line")


# ------------------------------------------------------------------------- 3. calendars and scripts

def _en_ios_dates(date_fmt) -> list[tuple]:
    rows = [
        ((2022, 3, 18), "14:56:01", "Ben Ortiz", f"{LRM}Messages and calls are end-to-end encrypted. No one outside "
         "of this chat, not even WhatsApp, can read or listen to them.", False, None),
        ((2022, 3, 27), "21:41:35", "Ana Lima", "Hello from the lake", False, "text"),
        ((2022, 3, 27), "21:41:55", "Ana Lima", f"{LRM}image omitted", True, "media"),
        ((2022, 3, 27), "21:50:09", "Ana Lima", f"Notes.txt {LRM}document omitted", True, "media"),
        ((2022, 3, 27), "21:50:54", "Ana Lima", f"{LRM}You deleted this message.", False, "deleted"),
        ((2022, 3, 27), "21:52:38", "Ben Ortiz", "Looks great", False, "text"),
        ((2022, 4, 28), "20:17:30", "Ben Ortiz", f"{LRM}{LRM}Your security code with Ben changed. {LRM}Tap to "
         "learn more.", False, None),
        ((2023, 1, 7), "23:32:30", "Ben Ortiz", "Happy new year!", False, "text"),
        ((2023, 1, 12), "02:05:44", "Ana Lima", f"{LRM}You deleted this message.", False, "deleted"),
        ((2023, 1, 12), "15:34:36", "Ana Lima", f"{LRM}GIF omitted", True, "media"),
        ((2023, 1, 12), "15:35:15", "Ana Lima", "Same to you", False, "text"),
    ]
    out = []
    for (y, m, d), hms, who, text, lead, kind in rows:
        raw = f"{LRM if lead else ''}[{date_fmt(y, m, d)}, {hms}] {who}: {text}"
        ts = f"{y:04d}-{m:02d}-{d:02d}T{hms}"
        out.append(E(raw) if kind is None else E(raw, ts, who, text if kind == "text" else None,
                                                 None if kind == "text" else kind))
    return out


fixture("cal_thai_buddhist_ios", "3 calendars", _en_ios_dates(lambda y, m, d: f"{m}/{d}/{y + 543} BE"), crlf=True,
        note="iOS with the Buddhist calendar: '[3/27/2565 BE, 21:41:35]'")
fixture("cal_japanese_era_ios", "3 calendars", _en_ios_dates(lambda y, m, d: f"{m}/{d}/R{y - 2018}"), crlf=True,
        note="iOS with the Japanese calendar: '[3/27/R4, 21:41:35]' (Reiwa 4 = 2022)")

_AR = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _ar_head(d: int, m: int, y: int, h: int, mi: int, s: int, eastern: bool) -> str:
    if eastern:
        hh = h % 12 or 12
        ampm = "م" if h >= 12 else "ص"
        return (f"[{str(d).translate(_AR)}{RLM}/{str(m).translate(_AR)}{RLM}/{str(y).translate(_AR)}، "
                f"{str(hh).translate(_AR)}:{mi:02d}:{s:02d}".translate(_AR) + f"{NBSP}{ampm}]")
    return f"[{RLM}{d}{RLM}/{m}{RLM}/{y}، {h:02d}:{mi:02d}:{s:02d}]"


def _arabic(eastern: bool) -> list[tuple]:
    partner = _phone("+40 521 028 61 88") if eastern else "Ben Ortiz"
    partner_clean = "+40 521 028 61 88" if eastern else "Ben Ortiz"
    youdel = "أنت حذفت هذه الرسالة." if eastern else "لقد حذَفت هذه الرسالة."
    rows = [
        ((18, 3, 2022, 14, 56, 0), partner, f"{RLM}الرسائل والمكالمات مشفرة تمامًا بين الطرفين، بحيث لا يستطيع أحد "
         "خارج هذه الدردشة، ولا حتى شركة واتساب نفسها، قراءتها أو الاستماع إليها.", False, None),
        ((27, 3, 2022, 21, 41, 35), "Ana Lima", "مرحبا من البحيرة", False, "text"),
        ((27, 3, 2022, 21, 41, 55), "Ana Lima", f"{RLM}لم يتم إدراج الصورة", True, "media"),
        ((27, 3, 2022, 21, 44, 16), "Ana Lima", f"{RLM}لم يتم إدراج الفيديوهات", True, "media"),
        ((27, 3, 2022, 21, 47, 54), "Ana Lima", f"{RLM}لم يتم إدراج بطاقة جهة اتصال", True, "media"),
        ((27, 3, 2022, 21, 49, 16), "Ana Lima", f"{RLM}تم حذف الملصقات", True, "media"),
        ((27, 3, 2022, 21, 50, 9), "Ana Lima", f"Notes.txt {RLM}لم يتم إدراج المستند", True, "media"),
        ((27, 3, 2022, 21, 50, 25), "Ana Lima", f"Budget 2022.pdf • {RLM}صفحتان 2 {RLM}لم يتم إدراج المستند", True,
         "media"),
        ((27, 3, 2022, 21, 50, 54), "Ana Lima", f"{RLM}{youdel}", False, "deleted"),
        ((27, 3, 2022, 21, 52, 37), partner, "جميل جدا", False, "text"),
        ((27, 3, 2022, 21, 54, 45), partner, f"{RLM}تم حذف هذه الرسالة.", False, "deleted"),
        ((27, 3, 2022, 21, 56, 45), "Ana Lima", f"{RLM}موقع: https://maps.google.com/?q=34.800600,28.100155", False,
         "location"),
        ((28, 4, 2022, 20, 17, 30), partner, f"{RLM}{RLM}تغيّر رمز أمانك المُستخدَم مع Ben. {RLM}انقر هنا لمعرفة "
         "المزيد.", False, None),
        ((28, 4, 2022, 20, 18, 2), partner, "أراك يوم الاثنين", False, "text"),
    ]
    out = []
    for (d, m, y, h, mi, s), who, text, lead, kind in rows:
        raw = f"{RLM if lead else ''}{_ar_head(d, m, y, h, mi, s, eastern)} {who}: {text}"
        ts = f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
        sender = partner_clean if who == partner else who
        out.append(E(raw) if kind is None else E(raw, ts, sender, text if kind == "text" else None,
                                                 None if kind == "text" else kind))
    return out


fixture("cal_arabic_ios_eastern_digits", "3 calendars", _arabic(True), crlf=True,
        note="Arabic iOS: Eastern Arabic digits with U+200F after each number, '، ', 12-hour م/ص after a "
             "no-break space, a phone-number sender in U+202A..U+202C with no-break spaces, CRLF")
fixture("cal_arabic_ios_western_digits", "3 calendars", _arabic(False), crlf=True,
        note="Arabic iOS with Western digits: '[\\u200f27\\u200f/3\\u200f/2022، 21:41:35]'")

fixture("cal_spaced_dots_no_dash", "3 calendars", [
    E("13. 6. 2018. 21:25:15 Ana: Jesi li stigla?", "2018-06-13T21:25:15", "Ana", "Jesi li stigla?"),
    E("13. 6. 2018. 21:26:02 Marko: Jesam, upravo", "2018-06-13T21:26:02", "Marko", "Jesam, upravo"),
    E("13. 6. 2018. 21:26:40 Ana: Super", "2018-06-13T21:26:40", "Ana", "Super"),
    E("vidimo se sutra", None),
    E("14. 6. 2018. 08:01:09 Marko: Dobro jutro", "2018-06-14T08:01:09", "Marko", "Dobro jutro"),
], note="'13. 6. 2018. 21:25:15 a: m': spaced dots, seconds, then the sender with no comma and no dash")
_s = FIXTURES["cal_spaced_dots_no_dash"]["lines"]
_s[2] = (_s[2][0], {**_s[2][1], "text": "Super\nvidimo se sutra"})


# ----------------------------------------------------------------------------------------- 4. LINE

fixture("line_ja_mobile", "4 line", [
    E("[LINE] ベンとのトーク履歴"),
    E("保存日時：2024/03/02 10:00"),
    E(""),
    E("2024/03/01(金)"),
    E("午前0:15\tベン\t起きてる？", "2024-03-01T00:15:00", "ベン", "起きてる？"),
    E("午前11:58\tアナ\tいま駅に着いた", "2024-03-01T11:58:00", "アナ", "いま駅に着いた"),
    E("午前12:03\tベン\tお昼どうする？", "2024-03-01T12:03:00", "ベン", "お昼どうする？"),
    E("午前12:04\tアナ\t[スタンプ]", "2024-03-01T12:04:00", "アナ", None, "media"),
    E("午後1:10\tベン\t[写真]", "2024-03-01T13:10:00", "ベン", None, "media"),
    E("午後1:12\tアナ\t[プレゼント]", "2024-03-01T13:12:00", "アナ", None, "media"),
    E("午後3:40\tベン\t☎ 不在着信", "2024-03-01T15:40:00", "ベン", None, "call"),
    E("午後3:45\tアナ\t☎ 通話時間 0:54", "2024-03-01T15:45:00", "アナ", None, "call"),
    E("午後3:50\tベン\t☎ 通話をキャンセルしました", "2024-03-01T15:50:00", "ベン", None, "call"),
    E("午後4:02\tアナ\tノートに投稿しました。", "2024-03-01T16:02:00", "アナ", None, "system"),
    E("午後4:05\tベンがメッセージの送信を取り消しました"),
    E("午後9:30\tアナ\t\"今日はありがとう", "2024-03-01T21:30:00", "アナ", "今日はありがとう\nまたね"),
    E("またね\""),
], note="LINE mobile export, Japanese UI: 午前12:03 is noon (the PC export of the same chat says 12:03)")

fixture("line_en_mobile", "4 line", [
    E("[LINE] Chat history with Ben"),
    E("Saved on: 3/2/2024, 10:00"),
    E(""),
    E("Fri, 03/01/2024"),
    E("9:05 AM\tBen\tMorning!", "2024-03-01T09:05:00", "Ben", "Morning!"),
    E("9:06 AM\tAna\t[Sticker]", "2024-03-01T09:06:00", "Ana", None, "media"),
    E("9:07 AM\tBen\t[Photo]", "2024-03-01T09:07:00", "Ben", None, "media"),
    E("12:03 PM\tAna\t☎ Missed call", "2024-03-01T12:03:00", "Ana", None, "call"),
    E("12:04 PM\tBen\t☎ Call time 0:54", "2024-03-01T12:04:00", "Ben", None, "call"),
    E("12:10 PM\tAna\t☎ Canceled call", "2024-03-01T12:10:00", "Ana", None, "call"),
    E("12:11 PM\tBen\t☎ No answer", "2024-03-01T12:11:00", "Ben", None, "call"),
    E("12:20 PM\tBen unsent a message."),
    E("6:45 PM\tAna\tSee you tomorrow", "2024-03-01T18:45:00", "Ana", "See you tomorrow"),
], note="LINE mobile export, English UI (Android date lines 'Fri, 03/01/2024')")

fixture("line_zh_tw_mobile", "4 line", [
    E("[LINE] 與小美的聊天記錄"),
    E("儲存日期：2025/02/10 14:00"),
    E(""),
    E("2024/01/15（一）"),
    E("09:15\t小美\t早安～", "2024-01-15T09:15:00", "小美", "早安～"),
    E("09:16\t阿明\t早安！今天天氣好好", "2024-01-15T09:16:00", "阿明", "早安！今天天氣好好"),
    E("12:30\t小美\t[貼圖]", "2024-01-15T12:30:00", "小美", None, "media"),
    E("12:31\t阿明\t[照片]", "2024-01-15T12:31:00", "阿明", None, "media"),
    E("14:00\t小美\t☎ 未接來電", "2024-01-15T14:00:00", "小美", None, "call"),
    E("14:05\t阿明\t☎ 通話時間 5:32", "2024-01-15T14:05:00", "阿明", None, "call"),
    E("22:46\t阿明\t晚安", "2024-01-15T22:46:00", "阿明", "晚安"),
], note="LINE mobile export, Traditional Chinese UI: full-width parentheses around the weekday")

fixture("line_th_mobile_be", "4 line", [
    E("[LINE] Chat history with Nok"),
    E("Saved on: 16/01/2566 BE, 10:00"),
    E(""),
    E("Sun, 15/01/2566 BE"),
    E("09:15\tNok\tสวัสดีตอนเช้า", "2023-01-15T09:15:00", "Nok", "สวัสดีตอนเช้า"),
    E("09:16\tPim\t[Sticker]", "2023-01-15T09:16:00", "Pim", None, "media"),
    E("13:20\tNok\t☎ Call time 1:02", "2023-01-15T13:20:00", "Nok", None, "call"),
    E("13:25\tPim\tไปกินข้าวกัน", "2023-01-15T13:25:00", "Pim", "ไปกินข้าวกัน"),
    E(""),
    E("Mon, 16/01/2566 BE"),
    E("08:00\tNok\tตื่นยัง", "2023-01-16T08:00:00", "Nok", "ตื่นยัง"),
], note="LINE mobile export with the Thai Buddhist calendar: 'Sun, 15/01/2566 BE' (day first)")

fixture("line_pc_en", "4 line", [
    E("2017.09.03 Sunday"),
    E("16:23 Ben Ortiz Today I found something:", "2017-09-03T16:23:00", "Ben Ortiz",
      "Today I found something:\nA parser for chats, apparently"),
    E("A parser for chats, apparently"),
    E("16:25 Ana Whaaat", "2017-09-03T16:25:00", "Ana", "Whaaat"),
    E("16:25 Ben Ortiz Yeah, it reads exports.", "2017-09-03T16:25:00", "Ben Ortiz", "Yeah, it reads exports."),
    E("16:26 Ben Ortiz Here's a screenshot:", "2017-09-03T16:26:00", "Ben Ortiz", "Here's a screenshot:"),
    E("16:27 Ben Ortiz Photos", "2017-09-03T16:27:00", "Ben Ortiz", None, "media"),
    E("16:30 Ana Looks awesome!", "2017-09-03T16:30:00", "Ana", "Looks awesome!"),
    E("2017.09.04 Monday"),
    E("09:02 Ana Morning", "2017-09-04T09:02:00", "Ana", "Morning"),
    E("09:10 Ben Ortiz Morning! Coffee?", "2017-09-04T09:10:00", "Ben Ortiz", "Morning! Coffee?"),
], note="LINE PC (Windows) export: space-separated fields, names with spaces, 'YYYY.MM.DD Weekday' lines")

fixture("line_pc_ja", "4 line", [
    E("2021.1.1 金曜日"),
    E("00:02 ベン あけおめ！", "2021-01-01T00:02:00", "ベン", "あけおめ！"),
    E("00:05 アナ ことしもよろしく", "2021-01-01T00:05:00", "アナ", "ことしもよろしく"),
    E("00:06 アナ スタンプ", "2021-01-01T00:06:00", "アナ", None, "media"),
    E("12:03 ベン 初詣いく？", "2021-01-01T12:03:00", "ベン", "初詣いく？"),
    E("12:10 アナ いく", "2021-01-01T12:10:00", "アナ", "いく"),
    E("2021.1.2 土曜日"),
    E("10:00 ベン 着いたよ", "2021-01-02T10:00:00", "ベン", "着いたよ"),
], note="LINE PC export, Japanese UI: '2021.1.1 金曜日' date lines")


# --------------------------------------------------------------------------------- 5. mixed styles

fixture("mixed_ios_then_android", "5 mixed", [
    E("[31.12.23, 21:05:07] Ana: Frohes neues Jahr schon mal!", "2023-12-31T21:05:07", "Ana",
      "Frohes neues Jahr schon mal!"),
    E("[31.12.23, 21:06:10] Ben: Danke, dir auch", "2023-12-31T21:06:10", "Ben", "Danke, dir auch"),
    E("[31.12.23, 23:59:59] Ana: Noch eine Sekunde", "2023-12-31T23:59:59", "Ana", "Noch eine Sekunde"),
    E("01.01.24, 00:01 - Ben: Neues Handy, alter Chat :)", "2024-01-01T00:01:00", "Ben",
      "Neues Handy, alter Chat :)"),
    E("01.01.24, 00:02 - Ana: Sieht man am Export", "2024-01-01T00:02:00", "Ana", "Sieht man am Export"),
    E("01.01.24, 00:03 - Ben: <Medien ausgeschlossen>", "2024-01-01T00:03:00", "Ben", None, "media"),
    E("02.01.24, 09:15 - Ana: Guten Morgen", "2024-01-02T09:15:00", "Ana", "Guten Morgen"),
], note="one chat exported from an iPhone, continued on Android, the two exports concatenated")

fixture("mixed_us_then_eu_android", "5 mixed", [
    E("12/30/23, 9:05 PM - Ana: Landing at 10", "2023-12-30T21:05:00", "Ana", "Landing at 10"),
    E("12/30/23, 9:06 PM - Ben: I'll pick you up", "2023-12-30T21:06:00", "Ben", "I'll pick you up"),
    E("12/31/23, 10:15 AM - Ana: Landed!", "2023-12-31T10:15:00", "Ana", "Landed!"),
    E("01/01/2024, 21:05 - Ben: Phone is set to UK now", "2024-01-01T21:05:00", "Ben", "Phone is set to UK now"),
    E("02/01/2024, 08:30 - Ana: Dates look different", "2024-01-02T08:30:00", "Ana", "Dates look different"),
    E("03/01/2024, 18:00 - Ben: Day first, 24 hours", "2024-01-03T18:00:00", "Ben", "Day first, 24 hours"),
    E("13/01/2024, 18:00 - Ana: Got it", "2024-01-13T18:00:00", "Ana", "Got it"),
], note="US Android (M/D/YY, 12-hour) then UK Android (DD/MM/YYYY, 24-hour) in one file")

fixture("mixed_android_then_ios_bidi", "5 mixed", [
    E("29/01/2018, 12:24 - Ana: first phone", "2018-01-29T12:24:00", "Ana", "first phone"),
    E("29/01/2018, 12:25 - Ben: ok", "2018-01-29T12:25:00", "Ben", "ok"),
    E("29/01/2018, 12:26 - Ana: <Media omitted>", "2018-01-29T12:26:00", "Ana", None, "media"),
    E(f"{LRM}[1/30/18, 9:00:01{NNBSP}AM] Ana: {LRM}image omitted", "2018-01-30T09:00:01", "Ana", None, "media"),
    E(f"[1/30/18, 9:00:05{NNBSP}AM] Ben: new phone?", "2018-01-30T09:00:05", "Ben", "new phone?"),
    E(f"[1/30/18, 9:01:00{NNBSP}AM] Ana: {LRM}yes, an iPhone", "2018-01-30T09:01:00", "Ana", "yes, an iPhone"),
], note="Android (D/M/Y) then iOS (M/D/YY with U+202F and LRM) concatenated")


# ------------------------------------------------------------------------------------------- write

def write_all() -> None:
    for old in HERE.glob("*.txt"):
        old.unlink()
    for old in HERE.glob("*.expected.jsonl"):
        old.unlink()
    for name, fx in FIXTURES.items():
        end = "\r\n" if fx["crlf"] else "\n"
        text = end.join(raw for raw, _ in fx["lines"]) + end
        (HERE / f"{name}.txt").write_bytes(text.encode("utf-8"))
        rows = [exp for _, exp in fx["lines"] if exp is not None]
        (HERE / f"{name}.expected.jsonl").write_text(
            "".join(json.dumps({"class": fx["cls"], **r}, ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8")
    print(f"wrote {len(FIXTURES)} fixtures to {HERE}")


if __name__ == "__main__":
    write_all()
